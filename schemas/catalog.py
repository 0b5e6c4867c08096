"""The catalog file (../shared/catalog-format.md), validated before anything is written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import (
    CurrencyCode,
    StrictBoolean,
    StrictInteger,
    StrictString,
    parse_rfc3339,
)

# \Z, not $: Python's $ also matches before a final newline, which PostgreSQL's checks
# then refuse with an error that names no entry of the file.
_DURATION = re.compile(r"^P(?!\Z)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?\Z")
# Amounts in minor units: at most 2^53 - 1, what a JavaScript consumer of the events reads
# exactly (and far inside the bigint an order's total is summed in).
MAX_AMOUNT = 2**53 - 1
_AMOUNT = validate.Range(0, MAX_AMOUNT, error="must be {min} to {max}")
# What the integer columns hold.
_COUNT = validate.Range(0, 2**31 - 1, error="must be {min} to {max}")
_TIER = validate.Range(-(2**31), 2**31 - 1, error="must be {min} to {max}")
RFC3339_MESSAGE = "must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z"


def _duration(value: str) -> None:
    if not _DURATION.match(value):
        raise ValidationError("must be an ISO 8601 duration such as P1M, P1Y or P7D")


class Rfc3339DateTime(fields.Field[datetime]):
    """An RFC 3339 date-time with its offset (Z or +hh:mm), read by the same parser as a
    request's x-date: `T` or `t` between date and time, seconds required, any fraction.
    What else ISO 8601 (and datetime.fromisoformat) allows is refused: a space for the
    `T`, week and ordinal dates, the basic format without separators, hours or minutes
    alone, fractional hours, and a time without an offset."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError(RFC3339_MESSAGE)
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            raise ValidationError(RFC3339_MESSAGE) from None
        try:
            # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, which neither Python nor
            # asyncpg can hold: refused here, by its path, not by the database.
            moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("must be within the years 0001 to 9999 in UTC") from None
        return moment


Prices = fields.Dict(keys=CurrencyCode(), values=StrictInteger(validate=_AMOUNT))


class KeySchema(Schema):
    public_key = StrictString(required=True, validate=validate.Length(1, 200))
    secret = StrictString(required=True, validate=validate.Length(min=8))
    # Left out: "active" for a new key, unchanged for a stored one (see the upsert).
    status = StrictString(load_default=None, validate=validate.OneOf(["active", "revoked"]))


class SubbrandSchema(Schema):
    alias = StrictString(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_]{1,100}\Z", error="letters, digits and _ only"),
    )
    host = StrictString(required=True, validate=validate.Length(1, 253))


class PeriodSchema(Schema):
    id = StrictString(
        required=True,
        validate=validate.Regexp(r"^[a-f0-9]{24}\Z", error="must be 24 lowercase hex"),
    )
    length = StrictString(required=True, validate=_duration)
    prices = fields.Dict(keys=CurrencyCode(), values=StrictInteger(validate=_AMOUNT), required=True)
    payment_method = StrictString(required=True, validate=validate.Length(1, 40))


class ProductSchema(Schema):
    code = StrictString(required=True, validate=validate.Length(1, 100))
    name = StrictString(required=True, validate=validate.Length(1, 200))
    kind = StrictString(required=True, validate=validate.OneOf(["subscription", "one_time"]))
    billing_period = StrictString(load_default=None, validate=_duration)
    tier = StrictInteger(load_default=0, validate=_TIER)
    prices = fields.Dict(keys=CurrencyCode(), values=StrictInteger(validate=_AMOUNT), required=True)
    periods = fields.List(fields.Nested(PeriodSchema), load_default=list)

    @validates_schema
    def subscription_has_period(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] == "subscription" and not data.get("billing_period"):
            raise ValidationError("a subscription needs a billing_period", "billing_period")


class CouponSchema(Schema):
    code = StrictString(required=True, validate=validate.Length(1, 100))
    percent_off = StrictInteger(validate=validate.Range(0, 100, error="must be 0 to 100"))
    amount_off = fields.Dict(keys=CurrencyCode(), values=StrictInteger(validate=_AMOUNT))
    max_redemptions = StrictInteger(load_default=None, validate=_COUNT)
    times_redeemed = StrictInteger(load_default=None, validate=_COUNT)
    valid_from = Rfc3339DateTime(load_default=None)
    valid_until = Rfc3339DateTime(load_default=None)
    active = StrictBoolean(load_default=None)  # left out: true when new, else unchanged

    @validates_schema
    def one_reduction(self, data: dict[str, Any], **_: Any) -> None:
        if "percent_off" in data and "amount_off" in data:
            raise ValidationError("a coupon has percent_off or amount_off, never both")
        if "percent_off" not in data and "amount_off" not in data:
            raise ValidationError("a coupon needs percent_off or amount_off")
        start, end = data.get("valid_from"), data.get("valid_until")
        if start and end and start >= end:
            raise ValidationError("must be after valid_from", "valid_until")
        used, limit = data.get("times_redeemed"), data.get("max_redemptions")
        if used is not None and limit is not None and used > limit:
            raise ValidationError("must not exceed max_redemptions", "times_redeemed")


class ChargeMethodSchema(Schema):
    id = StrictString(required=True, validate=validate.Length(1, 100))
    type = StrictString(required=True, validate=validate.Length(1, 40))
    status = StrictString(
        load_default=None, validate=validate.OneOf(["active", "expired", "disabled"])
    )


class SubscriptionSchema(Schema):
    id = fields.UUID(required=True)
    product_code = StrictString(required=True)
    status = StrictString(
        load_default=None, validate=validate.OneOf(["active", "cancelled", "expired"])
    )
    current_period_end = Rfc3339DateTime(load_default=None)


class BuyerSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)
    charge_methods = fields.List(fields.Nested(ChargeMethodSchema), load_default=list)
    subscriptions = fields.List(fields.Nested(SubscriptionSchema), load_default=list)


class AutochargeSchema(Schema):
    desktop = StrictBoolean(required=True)
    mobile = StrictBoolean(required=True)


class MerchantSchema(Schema):
    code = StrictString(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9_-]{0,63}\Z", error="lowercase letters, digits, _ and -"
        ),
    )
    name = StrictString(required=True, validate=validate.Length(1, 200))
    default_currency = CurrencyCode(required=True)
    order_prefix = StrictString(
        required=True,
        validate=validate.Regexp(r"^[A-Z0-9]{1,20}\Z", error="1 to 20 of A-Z and 0-9"),
    )
    precheck_autocharge = fields.Nested(AutochargeSchema, required=True)
    payment_page_url = StrictString(
        required=True,
        validate=validate.Regexp(
            r"^https?://.*\{order_id\}", error="an http(s) URL with {{order_id}}"
        ),
    )
    default_host = StrictString(required=True, validate=validate.Length(1, 253))
    keys = fields.List(fields.Nested(KeySchema), load_default=list)
    subbrands = fields.List(fields.Nested(SubbrandSchema), load_default=list)
    products = fields.List(fields.Nested(ProductSchema), load_default=list)
    coupons = fields.List(fields.Nested(CouponSchema), load_default=list)
    buyers = fields.List(fields.Nested(BuyerSchema), load_default=list)

    @validates_schema
    def references(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, Any] = {}
        codes = [p["code"] for p in data.get("products", [])]
        product_codes = set(codes)
        _duplicates(errors, "products", codes, "code")
        _duplicates(errors, "coupons", [c["code"] for c in data.get("coupons", [])], "code")
        _duplicates(errors, "subbrands", [s["alias"] for s in data.get("subbrands", [])], "alias")
        for b, buyer in enumerate(data.get("buyers", [])):
            for s, sub in enumerate(buyer["subscriptions"]):
                if sub["product_code"] not in product_codes:
                    errors.setdefault("buyers", {}).setdefault(b, {}).setdefault(
                        "subscriptions", {}
                    ).setdefault(s, {})["product_code"] = ["no product with this code"]
        if errors:
            raise ValidationError(errors)


def _duplicates(errors: dict[str, Any], name: str, values: list[str], attr: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            errors.setdefault(name, {})[index] = {attr: [f"duplicate {attr} {value!r}"]}
        seen.add(value)


def _globally_unique_ids(
    merchant: dict[str, Any],
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(path inside the merchant, kind, value) of every id that is a primary key of its
    table, so unique across the whole file and not only within one merchant."""
    for k, key in enumerate(merchant["keys"]):
        yield ("keys", k, "public_key"), "key", key["public_key"]
    for p, product in enumerate(merchant["products"]):
        for i, period in enumerate(product["periods"]):
            yield ("products", p, "periods", i, "id"), "period", period["id"]
    for b, buyer in enumerate(merchant["buyers"]):
        yield ("buyers", b, "id"), "buyer", str(buyer["id"])
        for c, method in enumerate(buyer["charge_methods"]):
            yield ("buyers", b, "charge_methods", c, "id"), "charge method", method["id"]
        for s, sub in enumerate(buyer["subscriptions"]):
            yield ("buyers", b, "subscriptions", s, "id"), "subscription", str(sub["id"])


def _error_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)[1:]


def _set_error(errors: dict[Any, Any], path: tuple[str | int, ...], message: str) -> None:
    node = errors
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node.setdefault(path[-1], []).append(message)


class CatalogSchema(Schema):
    merchants = fields.List(fields.Nested(MerchantSchema), required=True)

    @validates_schema
    def unique_across_merchants(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[Any, Any] = {}
        _duplicates(errors, "merchants", [m["code"] for m in data["merchants"]], "code")
        first_seen: dict[tuple[str, str], str] = {}
        for m, merchant in enumerate(data["merchants"]):
            for inner, kind, value in _globally_unique_ids(merchant):
                path = ("merchants", m, *inner)
                where = _error_path(path[:-1])
                if (kind, value) in first_seen:
                    _set_error(
                        errors,
                        path,
                        f"duplicate {kind} id {value!r}, already used at {first_seen[kind, value]}",
                    )
                else:
                    first_seen[kind, value] = where
        if errors:
            raise ValidationError(errors)


catalog_schema = CatalogSchema()
