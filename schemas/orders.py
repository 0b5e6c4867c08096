"""GET /api/v3/orders/{orderId}: the stored order as a merchant sees it (any family)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import MetaData

FAMILIES = ("initials_url", "oneclick", "me_order")


class OrderItemSchema(Schema):
    position = fields.Integer(required=True)
    action = fields.String(allow_none=True, required=True)
    productCode = fields.String(required=True)
    subscriptionId = fields.String(allow_none=True, required=True)
    periodId = fields.String(allow_none=True, required=True)
    unitAmount = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class DiscountReductionSchema(Schema):
    percent = fields.Integer(allow_none=True, required=True)
    amount = fields.Integer(required=True)


class CouponReductionSchema(Schema):
    code = fields.String(required=True)
    amount = fields.Integer(required=True)


class ReductionsSchema(Schema):
    discount = fields.Nested(DiscountReductionSchema, required=True)
    coupon = fields.Nested(CouponReductionSchema, allow_none=True, required=True)


class AutochargeSchema(Schema):
    value = fields.Boolean(allow_none=True, required=True)
    explicit = fields.Boolean(allow_none=True, required=True)


class OrderSchema(Schema):
    id = fields.String(required=True)
    reference = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(("created",)))
    family = fields.String(required=True, validate=validate.OneOf(FAMILIES))
    items = fields.List(fields.Nested(OrderItemSchema), required=True)
    currency = fields.String(required=True)
    baseAmount = fields.Integer(required=True)
    reductions = fields.Nested(ReductionsSchema, required=True)
    total = fields.Integer(required=True)
    autocharge = fields.Nested(AutochargeSchema, required=True)
    isMobile = fields.Boolean(allow_none=True, required=True)
    subbrand = fields.String(allow_none=True, required=True)
    paymentUrl = fields.String(allow_none=True, required=True)
    sequence = fields.String(allow_none=True, required=True)
    buyerId = fields.String(allow_none=True, required=True)
    buyer = fields.Dict(
        allow_none=True,
        required=True,
        metadata={
            "description": "initials_url: the request's buyer as stored, keys `id`, "
            "`email`, `firstName`, `lastName`, `country`, `locale` (each may be null); "
            "null when none was sent, and for the other families."
        },
    )
    chargeMethodId = fields.String(allow_none=True, required=True)
    customerAccount = fields.String(allow_none=True, required=True)
    buyerIp = fields.String(allow_none=True, required=True)
    source = fields.String(allow_none=True, required=True)
    sourceId = fields.String(allow_none=True, required=True)
    googleAnalyticsClientId = fields.String(allow_none=True, required=True)
    metaData = MetaData(allow_none=True, required=True)
    details = fields.Dict(
        allow_none=True,
        required=True,
        metadata={
            "description": "me_order: `period_id`, `payment_method`, `start_date`, "
            "`browser_ip`, `language`, `user_agent`, `receipt_url`, `traffic_source`, "
            "`merchant_reference`, `invoice_delivery_method` and `address` (the one "
            "given, else the customer's default); null for the other families."
        },
    )
    createdAt = fields.String(required=True, metadata={"format": "date-time"})


class EntityMetaSchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("entity"))


class OrderResponseSchema(Schema):
    data = fields.Nested(OrderSchema, required=True)
    meta = fields.Nested(EntityMetaSchema, required=True)


order_response_schema = OrderResponseSchema()
