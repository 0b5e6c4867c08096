"""POST /api/v2/initials/url: the request body and the 200 response."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from schemas.common import CurrencyCode, MetaData, StrictBoolean, StrictInteger, StrictString
from schemas.fast_schema import FastSchema
from service.domain.countries import is_country

SEQUENCE_MAX_LENGTH = 64
SUBBRAND_ALIAS = re.compile(r"^[A-Za-z0-9_]{1,100}$")
# BCP 47 in the shapes browsers and apps send: "en", "en-US", "pt_BR", "zh-Hant-TW".
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")


class CountryCode(fields.String):
    """An ISO 3166-1 alpha-2 code such as US or DE (stored upper-case)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        # Only ASCII is upper-cased: Unicode rules would make "ß" into "SS" (South Sudan).
        code = value.strip()
        code = code.upper() if code.isascii() else code
        if not is_country(code):
            raise ValidationError("must be an ISO 3166-1 alpha-2 country code, e.g. US")
        return code


class SubbrandAlias(fields.String):
    """A sub-brand's alias: the host name with "_" for every dot and hyphen."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if "." in value or "-" in value:
            alias = value.replace(".", "_").replace("-", "_")
            raise ValidationError(
                f'send the sub-brand alias, with "_" for every dot and hyphen: '
                f'"{value}" is written "{alias}"'
            )
        if not SUBBRAND_ALIAS.match(value):
            raise ValidationError("a sub-brand alias is 1 to 100 letters, digits and underscores")
        return value


class ProductSchema(FastSchema):
    code = StrictString(required=True, validate=validate.Length(1, 100))
    # Absent or null: the merchant's default currency.
    currency = CurrencyCode(load_default=None)


class BuyerSchema(FastSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    id = StrictString(load_default=None, validate=validate.Length(1, 100))
    first_name = StrictString(
        data_key="firstName", load_default=None, validate=validate.Length(1, 100)
    )
    last_name = StrictString(
        data_key="lastName", load_default=None, validate=validate.Length(1, 100)
    )
    country = CountryCode(load_default=None)
    locale = StrictString(
        load_default=None,
        validate=validate.Regexp(LOCALE, error="must be a language tag such as en or en-US"),
    )


class InitialsUrlRequestSchema(FastSchema):
    """Unknown fields are refused (marshmallow's default), at every level."""

    product = fields.Nested(ProductSchema, required=True)
    buyer = fields.Nested(BuyerSchema, load_default=None)
    metadata = MetaData(data_key="metaData", load_default=None, allow_none=True)
    autocharge = StrictBoolean(data_key="autoChargeStatus", load_default=None)
    sequence = StrictString(load_default=None, validate=validate.Length(1, SEQUENCE_MAX_LENGTH))
    discount = StrictInteger(
        load_default=None, validate=validate.Range(0, 100, error="must be 0 to 100")
    )
    coupon = StrictString(load_default=None, validate=validate.Length(1, 100))
    subbrand = SubbrandAlias(load_default=None)


# Response shapes (documentation and contract tests; handlers build the dicts directly).


class InitialsUrlParamsSchema(Schema):
    metaData = MetaData(allow_none=True, required=True)
    sequence = StrictString(allow_none=True, required=True)
    discount = StrictInteger(allow_none=True, required=True)
    coupon = StrictString(allow_none=True, required=True)
    googleAnalyticsClientId = StrictString(allow_none=True, required=True)


class InitialsUrlDataSchema(Schema):
    url = fields.Url(
        required=True,
        metadata={"description": "the payment page of the order", "format": "uri"},
    )
    params = fields.Nested(InitialsUrlParamsSchema, required=True)


class InitialsUrlResponseSchema(Schema):
    data = fields.Nested(InitialsUrlDataSchema, required=True)
    meta = fields.List(fields.Raw(), required=True, validate=validate.Length(equal=0))


initials_url_request_schema = InitialsUrlRequestSchema()
initials_url_response_schema = InitialsUrlResponseSchema()
