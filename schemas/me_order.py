"""Request and response shapes of POST /external/api/v1/me/order (Payway-style API).

Errors follow that API: one error per response, `{"code", "field", "message"}`. A field the
document does not name is `unknown_parameter`; every other violation is `invalid_parameter`.
When a body has several problems the first is reported: unknown fields first (in the order
the body lists them), then the other fields in the order of the document's parameter table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, post_load, validates_schema
from marshmallow.validate import Length, OneOf

from schemas.common import RFC3339_OPTIONAL_OFFSET, flatten_errors
from schemas.fast_schema import FastSchema
from service.domain.countries import is_country
from service.domain.identifiers import shown_id
from service.domain.ip_addresses import canonical_ip
from service.errors import BadRequest

# The document's parameter table, in its order: also the order errors are reported in.
REQUEST_FIELDS = (
    "product_code",
    "period_id",
    "start_date",
    "browser_ip",
    "language",
    "user_agent",
    "receipt_url",
    "address",
    "traffic_source",
    "merchant_reference",
    "invoice_delivery_method",
)
ADDRESS_FIELDS = (
    "first_name",
    "last_name",
    "street",
    "street_number",
    "staircase",
    "floor",
    "apartment_number",
    "zip_code",
    "city",
    "country_code",
)
INVOICE_DELIVERY_METHODS = ("mail", "email")

# The document's own wording (it shows the pattern without the /i flag it also allows).
PERIOD_ID_MESSAGE = "Parameter must match format (/^[a-f\\d]{24}$/)"
PERIOD_ID_PATTERN = re.compile(r"[a-f\d]{24}", re.IGNORECASE | re.ASCII)
# RFC 5646 language tag: language, script, region, variants, extensions, private use;
# or a private-use tag alone (x-whatever), or a grandfathered i- tag (i-klingon).
LANGUAGE_TAG = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"
    r"(?:-[a-z]{4})?"
    r"(?:-(?:[a-z]{2}|\d{3}))?"
    r"(?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*"
    r"(?:-[a-wy-z\d](?:-[a-z\d]{2,8})+)*"
    r"(?:-x(?:-[a-z\d]{1,8})+)?"
    r"|x(?:-[a-z\d]{1,8})+"
    r"|i-[a-z]{2,8}",
    re.IGNORECASE | re.ASCII,
)

MAX_LANGUAGE_LENGTH = 35
MAX_USER_AGENT_LENGTH = 1024
MAX_URL_LENGTH = 2048
MAX_TRAFFIC_SOURCE_LENGTH = 128
MAX_MERCHANT_REFERENCE_LENGTH = 255
MAX_PRODUCT_CODE_LENGTH = 100  # products.code
MAX_ADDRESS_FIELD_LENGTH = 100


class Param(fields.String):
    """A string parameter with the Payway-style messages."""

    default_error_messages = {
        "required": "Parameter is required",
        "null": "Parameter must not be null",
        "invalid": "Parameter must be a string",
        "invalid_utf8": "Parameter must be a string",
        "validator_failed": "Parameter is not valid",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL.
            raise ValidationError("Parameter must not contain NUL characters")
        return text


def _length(low: int | None, high: int) -> Length:
    if low:
        return Length(low, high, error=f"Parameter must be {low} to {high} characters")
    return Length(max=high, error=f"Parameter must be at most {high} characters")


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Parameter must not be empty")


class PeriodId(Param):
    """24 hex digits in either case, kept lowercase (the catalog's form)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if PERIOD_ID_PATTERN.fullmatch(text) is None:
            raise ValidationError(PERIOD_ID_MESSAGE)
        return text.lower()


class IpAddress(Param):
    """An IPv4 or IPv6 address, written as the order row will hold it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            # A zone index (fe80::1%eth0) is local to the customer's machine: not an address
            # PostgreSQL's inet can hold, nor one worth keeping.
            if "%" in text:
                raise ValueError(text)
            return canonical_ip(text)
        except ValueError:
            raise ValidationError("Parameter must be an IP address (IPv4 or IPv6)") from None


class LanguageTag(Param):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > MAX_LANGUAGE_LENGTH or LANGUAGE_TAG.fullmatch(text) is None:
            raise ValidationError("Parameter must be a BCP 47 language tag, e.g. sv-SE")
        return text


class HttpUrl(Param):
    """An absolute http(s) URL with a host."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        message = "Parameter must be an absolute http or https URL"
        if len(text) > MAX_URL_LENGTH:
            raise ValidationError(f"Parameter must be at most {MAX_URL_LENGTH} characters")
        if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in text):
            raise ValidationError(message)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - accessing it validates the port
        except ValueError:
            raise ValidationError(message) from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(message)
        return text


class StartDate(Param):
    """An RFC 3339 date-time as an aware UTC datetime; without an offset it is UTC."""

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> datetime:
        text = super()._deserialize(value, attr, data, **kwargs)
        message = "Parameter must be an RFC 3339 date-time, e.g. 2019-05-01T00:00:00+00:00"
        # The document gives start_date "in UTC": a date-time without an offset is UTC.
        match = RFC3339_OPTIONAL_OFFSET.fullmatch(text)
        if match is None:
            raise ValidationError(message)
        day, clock, fraction, offset = match.groups()
        # Python keeps microseconds: finer fractions are cut, not refused.
        fraction = (fraction or "")[:7]
        offset = "+00:00" if offset in (None, "Z", "z") else offset
        try:
            moment = datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValidationError(message) from None


class CountryCode(Param):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        # Only ASCII is upper-cased: Unicode rules would make "ﬅ" into "ST" (São Tomé).
        text = text.upper() if text.isascii() else text
        if not is_country(text):
            raise ValidationError("Parameter must be an ISO 3166-1 alpha-2 country code, e.g. SE")
        return text


def _address_part(**kwargs: Any) -> Param:
    return Param(allow_none=True, validate=_length(None, MAX_ADDRESS_FIELD_LENGTH), **kwargs)


class AddressSchema(FastSchema):
    """The customer's address; it becomes their default address for later purchases."""

    error_messages = {"type": "Parameter must be an object"}

    first_name = _address_part()
    last_name = _address_part()
    street = _address_part()
    street_number = _address_part()
    staircase = _address_part()
    floor = _address_part()
    apartment_number = _address_part()
    zip_code = _address_part()
    city = _address_part()
    country_code = CountryCode(
        allow_none=True,
        metadata={"description": "ISO 3166-1 alpha-2, e.g. SE.", "pattern": "^[A-Za-z]{2}$"},
    )

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not any(value is not None for value in data.values()):
            raise ValidationError("Parameter must name at least one address field")

    @post_load
    def _drop_nulls(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class MeOrderRequestSchema(FastSchema):
    """The body of POST /external/api/v1/me/order. Optional fields may also be null."""

    product_code = Param(
        required=True,
        validate=_length(1, MAX_PRODUCT_CODE_LENGTH),
        metadata={"description": "The product code for a package/campaign of the merchant."},
    )
    period_id = PeriodId(
        required=True,
        metadata={
            "description": "The period of the product to order; its payment method "
            "(invoice or autogiro) becomes the order's.",
            "pattern": "^[a-fA-F0-9]{24}$",
            "maxLength": 24,
        },
    )
    start_date = StartDate(
        allow_none=True,
        metadata={
            "description": "RFC 3339 start of the subscription, UTC when it has no offset; "
            "default now.",
        },
    )
    browser_ip = IpAddress(
        required=True,
        metadata={"description": "The customer's IPv4 or IPv6 address.", "example": "127.0.0.1"},
    )
    language = LanguageTag(
        required=True,
        metadata={
            "description": "The browser language, a BCP 47 tag.",
            "maxLength": MAX_LANGUAGE_LENGTH,
            "example": "sv-SE",
        },
    )
    user_agent = Param(
        required=True,
        validate=[_not_blank, _length(None, MAX_USER_AGENT_LENGTH)],
        metadata={"minLength": 1, "pattern": r"\S"},  # not blank
    )
    receipt_url = HttpUrl(
        required=True,
        metadata={
            "description": "Absolute http(s) URL the customer ends up on after ordering.",
            "format": "uri",
            "maxLength": MAX_URL_LENGTH,
        },
    )
    address = fields.Nested(
        AddressSchema,
        allow_none=True,
    )
    traffic_source = Param(allow_none=True, validate=_length(None, MAX_TRAFFIC_SOURCE_LENGTH))
    merchant_reference = Param(
        allow_none=True, validate=_length(None, MAX_MERCHANT_REFERENCE_LENGTH)
    )
    invoice_delivery_method = Param(
        allow_none=True,
        validate=OneOf(INVOICE_DELIVERY_METHODS, error="Parameter must be one of: mail, email"),
        metadata={"description": "Only when the period's payment method is invoice."},
    )

    @post_load
    def _drop_nulls(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class MeOrderResponseSchema(Schema):
    """200 OK: the order's id and its reference (`<MERCHANT PREFIX>-<number>`)."""

    id = fields.String(required=True, metadata={"example": "585a4768edce2c5e6f000001"})
    order_id = fields.String(required=True, metadata={"example": "ADEPRIMO-1234"})


ME_ORDER_REQUEST = MeOrderRequestSchema()


def invalid_parameter(field: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_parameter", fields={field: [message]})


def unknown_parameter(data: Mapping[str, Any]) -> str | None:
    """The first field of the body the document does not name (`address.foo` inside it),
    cut short as an answer repeats it."""
    for key in data:
        if key not in REQUEST_FIELDS:
            return shown_id(key)
    address = data.get("address")
    if isinstance(address, Mapping):
        for key in address:
            if key not in ADDRESS_FIELDS:
                return f"address.{shown_id(key)}"
    return None


def _document_rank(path: str) -> tuple[int, int]:
    top, _, sub = path.partition(".")
    top_rank = REQUEST_FIELDS.index(top) if top in REQUEST_FIELDS else len(REQUEST_FIELDS)
    sub_rank = ADDRESS_FIELDS.index(sub) if sub in ADDRESS_FIELDS else -1
    return top_rank, sub_rank


def load_me_order_request(data: Mapping[str, Any]) -> dict[str, Any]:
    """The validated body, or BadRequest with the first problem (see the module doc)."""
    unknown = unknown_parameter(data)
    if unknown is not None:
        raise BadRequest(
            f"Unknown parameter {unknown}",
            code="unknown_parameter",
            fields={unknown: ["unknown parameter"]},
        )
    try:
        loaded: dict[str, Any] = ME_ORDER_REQUEST.load(data)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
        field = min(problems, key=_document_rank)
        raise invalid_parameter(field, problems[field][0]) from None
    return loaded
