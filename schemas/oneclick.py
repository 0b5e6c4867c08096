"""POST /api/v3/buyers/{buyerId}/oneclick: the request body and the response shapes.

The document's rules that need no catalog are checked here: which fields each action takes
(rule 2) and that a subscription is acted on by at most one entry (rule 1). Rules that need
the catalog (buyer, payment method, subscriptions, tiers, prices) live in
service/domain/oneclick.py.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import CurrencyCode, MetaData, StrictBoolean, StrictString
from schemas.fast_schema import FastSchema
from service.domain.identifiers import UUID_TEXT
from service.domain.oneclick import (
    ACTIONS,
    DOWNGRADE,
    MAX_PRODUCTS,
    PURCHASE,
    RENEW,
    SUBSCRIPTION_ACTIONS,
    UPGRADE,
    OneclickItemRequest,
    OneclickRequest,
    item_path,
)

# Rule 2: the fields each action requires, and the ones it also accepts. The document
# groups renew with upgrade and downgrade; a renewal's productCode may be sent, and must
# then name the subscription's own product (service/domain/oneclick.py checks that).
ACTION_FIELDS: dict[str, frozenset[str]] = {
    PURCHASE: frozenset({"productCode"}),
    UPGRADE: frozenset({"productCode", "subscriptionId"}),
    DOWNGRADE: frozenset({"productCode", "subscriptionId"}),
    RENEW: frozenset({"subscriptionId"}),
}
OPTIONAL_ACTION_FIELDS: dict[str, frozenset[str]] = {RENEW: frozenset({"productCode"})}
ITEM_FIELDS = ("productCode", "subscriptionId")


class StrictUUID(fields.UUID):
    """A UUID written as a JSON string in its 8-4-4-4-12 form (not a number, an array of
    bytes, braces or a urn:uuid: prefix)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> uuid.UUID:
        if not isinstance(value, str) or not UUID_TEXT.fullmatch(value):
            raise ValidationError("must be a UUID string (8-4-4-4-12 hex digits)")
        result: uuid.UUID = super()._deserialize(value, attr, data, **kwargs)
        return result


class OneclickProductSchema(FastSchema):
    action = StrictString(
        required=True,
        validate=validate.OneOf(ACTIONS, error="must be one of: " + ", ".join(ACTIONS)),
    )
    # null is absent, as for the body's optional fields: clients generated from the
    # OpenAPI document send their unset fields as null.
    product_code = StrictString(
        data_key="productCode", allow_none=True, validate=validate.Length(1, 100)
    )
    subscription_id = StrictUUID(data_key="subscriptionId", allow_none=True)

    @validates_schema
    def fields_belong_to_action(self, data: dict[str, Any], **_: Any) -> None:
        """Rule 2: purchase takes productCode only; upgrade and downgrade take both;
        renew takes subscriptionId, and productCode if the caller wants to name it."""
        action = data["action"]
        takes = ACTION_FIELDS[action]
        accepts = takes | OPTIONAL_ACTION_FIELDS.get(action, frozenset())
        present = {
            "productCode": data.get("product_code") is not None,
            "subscriptionId": data.get("subscription_id") is not None,
        }
        problems: dict[str, list[str]] = {}
        for name in ITEM_FIELDS:
            if name in takes and not present[name]:
                problems[name] = [f"required for action {action!r}"]
            elif name not in accepts and present[name]:
                problems[name] = [f"not allowed for action {action!r}"]
        if problems:
            raise ValidationError(problems)


class BoundedList(fields.List[Any]):
    """A list whose entries are loaded only when there are at most `max_length` of them:
    a body of thousands of entries gets one error, not one per entry (each loaded on the
    event loop, checked against every other, and named in a megabyte-long answer)."""

    def __init__(
        self, entry: fields.Field[Any], *, max_length: int, too_long: str, **kwargs: Any
    ) -> None:
        super().__init__(entry, **kwargs)
        self.max_length = max_length
        self.too_long = too_long

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list) and len(value) > self.max_length:
            raise ValidationError(self.too_long)
        return super()._deserialize(value, attr, data, **kwargs)


PRODUCTS_LENGTH = f"1 to {MAX_PRODUCTS} entries"


class OneclickRequestSchema(FastSchema):
    is_mobile = StrictBoolean(data_key="isMobile", required=True)
    charge_method_id = StrictString(
        data_key="chargeMethodId", required=True, validate=validate.Length(1, 100)
    )
    # Absent: the merchant's default currency (resolved by the domain rules).
    currency = CurrencyCode(load_default=None)
    metadata = MetaData(data_key="metaData", load_default=None, allow_none=True)
    products = BoundedList(
        fields.Nested(OneclickProductSchema),
        max_length=MAX_PRODUCTS,
        too_long=PRODUCTS_LENGTH,
        required=True,
        validate=validate.Length(1, MAX_PRODUCTS, error=PRODUCTS_LENGTH),
    )

    # Runs even when fields are bad, so one 422 names every problem; marshmallow then hands
    # over what did load. A null entry is left out of that, which moves the entries after
    # it: then the positions are unknown and rule 1 waits for the corrected request.
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def subscriptions_are_unique(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        """Rule 1: upgrade, renew and downgrade of one subscription cannot be combined;
        every entry naming the same subscription is listed, each naming the others."""
        products = data.get("products") or []
        sent = original.get("products") if isinstance(original, dict) else None
        if not isinstance(sent, list) or len(sent) != len(products):
            return
        positions: defaultdict[uuid.UUID, list[int]] = defaultdict(list)
        for position, item in enumerate(products):
            if (
                isinstance(item, dict)
                and item.get("action") in SUBSCRIPTION_ACTIONS
                and item.get("subscription_id") is not None
            ):
                positions[item["subscription_id"]].append(position)
        problems: dict[str, list[str]] = {}
        for subscription_id, shared in positions.items():
            if len(shared) < 2:
                continue
            for position in shared:
                others = ", ".join(item_path(p) for p in shared if p != position)
                problems[item_path(position, "subscriptionId")] = [
                    f"subscription {subscription_id} is also in {others}; one subscription "
                    "may be upgraded, downgraded or renewed only once per request"
                ]
        if problems:
            raise ValidationError(problems)


def to_oneclick_request(loaded: dict[str, Any]) -> OneclickRequest:
    """The loaded body as the typed command the domain rules take."""
    return OneclickRequest(
        is_mobile=loaded["is_mobile"],
        charge_method_id=loaded["charge_method_id"],
        currency=loaded["currency"],
        metadata=loaded["metadata"],
        products=tuple(
            OneclickItemRequest(
                action=item["action"],
                product_code=item.get("product_code"),
                subscription_id=item.get("subscription_id"),
            )
            for item in loaded["products"]
        ),
    )


class OneclickOrderIdSchema(Schema):
    id = fields.String(
        required=True,
        metadata={"description": "The order's 8-character base62 id", "example": "NG1pqx4q"},
    )


class OneclickMetaSchema(Schema):
    type = fields.String(required=True, metadata={"example": "entity"})


class OneclickResponseSchema(Schema):
    """200: the order created (the same shape for every action)."""

    data = fields.Nested(OneclickOrderIdSchema, required=True)
    meta = fields.Nested(OneclickMetaSchema, required=True)


ONECLICK_REQUEST = OneclickRequestSchema()
