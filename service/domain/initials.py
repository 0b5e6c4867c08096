"""The rules of POST /api/v2/initials/url: product and currency, coupon, sub-brand,
autocharge, the shop's buyer rule, pricing, and the rows, event and response of the order.

Plain functions over the catalog snapshot, so a unit test can call them without a server.
A coupon's redemption limit is the one rule decided in the database (place_order counts
redemptions in the order's transaction); everything else is decided here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from events.envelope import order_created_event
from events.order_data import OrderAmounts, OrderBuyer, OrderItem, order_event_data
from service.auth.merchant import MerchantRequest
from service.catalog import Coupon, Merchant, Product
from service.domain.identifiers import UUID_TEXT
from service.domain.pricing import CouponValue, Price, price_with_discount_and_coupon
from service.errors import ProductNotFound, ValidationFailed
from service.handlers.common import merchant_order_columns, request_origin
from service.order_store import PreparedOrder, order_item_row, order_row
from service.records import record

FAMILY: Final = "initials_url"
SHOP_SOURCE = "shop"


@record
class InitialsOrder:
    """A request that passed every rule: all the order needs except its id."""

    merchant: Merchant
    product: Product
    currency: str
    price: Price
    coupon: Coupon | None
    autocharge: bool
    autocharge_explicit: bool
    subbrand: str | None
    buyer: dict[str, Any] | None
    buyer_id: uuid.UUID | None
    metadata: dict[str, Any] | None
    sequence: str | None
    discount: int | None


BUYER_REQUIRED = 'required when x-source is "shop"'


def buyer_required(source: str) -> bool:
    """Orders from the Shop must say who buys (the document makes `buyer` MANDATORY there)."""
    return source.strip().lower() == SHOP_SOURCE


def buyer_required_error() -> ValidationFailed:
    return ValidationFailed(
        'buyer is mandatory when x-source is "shop"',
        code="buyer_required",
        fields={"buyer": [BUYER_REQUIRED]},
    )


def resolve_product_price(
    merchant: Merchant, product_code: str, currency: str | None
) -> tuple[Product, str, int]:
    """The product, the order's currency (default: the merchant's) and its price there."""
    product = merchant.products.get(product_code)
    if product is None:
        raise ProductNotFound("product.code", product_code)
    currency = currency or merchant.default_currency
    base = product.prices.get(currency)
    if base is None:
        available = ", ".join(sorted(product.prices)) or "none"
        raise ValidationFailed(
            f"Product {product_code!r} has no price in {currency}",
            code="currency_not_available",
            fields={"product.currency": [f"no price in {currency}; priced in {available}"]},
        )
    return product, currency, base


def check_coupon(merchant: Merchant, code: str, currency: str, now: datetime) -> Coupon:
    """The merchant's coupon if it can be used now in `currency`; a 422 per reason if not.

    Whether it is still under its redemption limit is decided when the order is written.
    """
    coupon = merchant.coupons.get(code)
    if coupon is None:
        raise _coupon_error("coupon_not_found", f"Coupon {code!r} not found", "unknown coupon")
    if not coupon.active:
        raise _coupon_error(
            "coupon_inactive", f"Coupon {code!r} is no longer active", "coupon is inactive"
        )
    if coupon.valid_from is not None and now < coupon.valid_from:
        raise _coupon_error(
            "coupon_not_yet_valid",
            f"Coupon {code!r} is valid from {coupon.valid_from.isoformat()}",
            "coupon is not valid yet",
        )
    if coupon.valid_until is not None and now >= coupon.valid_until:
        raise _coupon_error(
            "coupon_expired",
            f"Coupon {code!r} expired at {coupon.valid_until.isoformat()}",
            "coupon has expired",
        )
    if coupon.amount_off is not None and currency not in coupon.amount_off:
        raise _coupon_error(
            "coupon_currency_not_supported",
            f"Coupon {code!r} has no amount in {currency}",
            f"coupon has no amount in {currency}",
        )
    return coupon


def _coupon_error(code: str, message: str, field_message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, fields={"coupon": [field_message]})


def coupon_value(coupon: Coupon, currency: str) -> CouponValue:
    if coupon.percent_off is not None:
        return CouponValue(percent_off=coupon.percent_off)
    assert coupon.amount_off is not None  # a coupon has one of the two (catalog check)
    return CouponValue(amount_off=coupon.amount_off[currency])


def check_subbrand(merchant: Merchant, alias: str | None) -> None:
    if alias is not None and alias not in merchant.subbrands:
        raise ValidationFailed(
            f"Sub-brand {alias!r} not found",
            code="subbrand_not_found",
            fields={"subbrand": ["unknown sub-brand alias"]},
        )


def resolve_autocharge(merchant: Merchant, requested: bool | None) -> tuple[bool, bool]:
    """(autocharge, explicit): the request's value, else the precheck setting (desktop)."""
    if requested is None:
        return merchant.precheck_autocharge_desktop, False
    return requested, True


def buyer_record(buyer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The buyer as stored and sent on: the request's names, every key present."""
    if buyer is None:
        return None
    return {
        "id": buyer["id"],
        "email": buyer["email"],
        "firstName": buyer["first_name"],
        "lastName": buyer["last_name"],
        "country": buyer["country"],
        "locale": buyer["locale"],
    }


def event_buyer(buyer: dict[str, Any] | None) -> OrderBuyer | None:
    """The buyer record (buyer_record) as the order-created event carries it."""
    if buyer is None:
        return None
    return OrderBuyer(
        email=buyer["email"],
        id=buyer["id"],
        first_name=buyer["firstName"],
        last_name=buyer["lastName"],
        country=buyer["country"],
        locale=buyer["locale"],
    )


def known_buyer_id(merchant: Merchant, buyer_id: str | None) -> uuid.UUID | None:
    """The id of the merchant's own buyer when `buyer.id` names one; the id is otherwise the
    merchant's own reference and is only stored (another merchant's buyer is never linked)."""
    if buyer_id is None or not UUID_TEXT.fullmatch(buyer_id):
        return None
    parsed = uuid.UUID(buyer_id)
    return parsed if parsed in merchant.buyers else None


def plan_initials_order(merchant: Merchant, body: dict[str, Any], now: datetime) -> InitialsOrder:
    """Applies every rule to a loaded request body (schemas/initials.py)."""
    product, currency, base = resolve_product_price(
        merchant, body["product"]["code"], body["product"]["currency"]
    )
    check_subbrand(merchant, body["subbrand"])
    coupon = check_coupon(merchant, body["coupon"], currency, now) if body["coupon"] else None
    price = price_with_discount_and_coupon(
        base, body["discount"], coupon_value(coupon, currency) if coupon else None
    )
    autocharge, explicit = resolve_autocharge(merchant, body["autocharge"])
    buyer = buyer_record(body["buyer"])
    return InitialsOrder(
        merchant=merchant,
        product=product,
        currency=currency,
        price=price,
        coupon=coupon,
        autocharge=autocharge,
        autocharge_explicit=explicit,
        subbrand=body["subbrand"],
        buyer=buyer,
        buyer_id=known_buyer_id(merchant, buyer["id"] if buyer else None),
        metadata=body["metadata"],
        sequence=body["sequence"],
        discount=body["discount"],
    )


def prepare_initials_order(
    order: InitialsOrder,
    ctx: MerchantRequest,
    order_id: str,
    created_at: datetime,
    event_source: str,
) -> PreparedOrder:
    """The order row, its one item, the order-created event and the 200 body."""
    merchant, price = order.merchant, order.price
    payment_url = merchant.payment_url(order_id, order.subbrand)
    coupon_code = order.coupon.code if order.coupon else None
    row = order_row(
        id=order_id,
        family=FAMILY,
        currency=order.currency,
        base_amount=price.base,
        discount_percent=price.discount_percent,
        discount_amount=price.discount_amount,
        coupon_id=order.coupon.id if order.coupon else None,
        coupon_code=coupon_code,
        coupon_amount=price.coupon_amount,
        total_amount=price.total,
        autocharge=order.autocharge,
        autocharge_explicit=order.autocharge_explicit,
        subbrand=order.subbrand,
        payment_url=payment_url,
        sequence=order.sequence,
        buyer_id=str(order.buyer_id) if order.buyer_id else None,
        buyer=order.buyer,
        metadata=order.metadata,
        **merchant_order_columns(ctx, created_at),
    )
    item = order_item_row(
        order_id,
        0,
        product_id=order.product.id,
        product_code=order.product.code,
        unit_amount=price.base,
    )
    event_order = order_event_data(
        order_id=order_id,
        family=FAMILY,
        merchant=merchant,
        currency=order.currency,
        amounts=OrderAmounts(
            base=price.base,
            total=price.total,
            discount_percent=price.discount_percent,
            discount=price.discount_amount,
            coupon=price.coupon_amount,
        ),
        items=[
            OrderItem(
                position=0,
                action="purchase",
                product_code=order.product.code,
                product_name=order.product.name,
                unit_amount=price.base,
            )
        ],
        request=request_origin(ctx),
        created_at=created_at,
        buyer=event_buyer(order.buyer),
        coupon_code=coupon_code,
        autocharge=order.autocharge,
        autocharge_explicit=order.autocharge_explicit,
        subbrand=order.subbrand,
        payment_url=payment_url,
        sequence=order.sequence,
    )
    event = order_created_event(
        source=event_source,
        family=FAMILY,
        order_id=order_id,
        created_at=created_at,
        order=event_order,
        metadata=order.metadata,
    )
    response = {
        "data": {
            "url": payment_url,
            "params": {
                "metaData": order.metadata,
                "sequence": order.sequence,
                "discount": order.discount,
                "coupon": coupon_code,
                "googleAnalyticsClientId": ctx.ga_client_id,
            },
        },
        "meta": [],
    }
    return PreparedOrder(
        row=row, items=[item], event=event, response_status=200, response_body=response
    )
