"""Assembles the document: components, then the operations of the routes the app serves."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from schemas.common import (
    METADATA_MAX_KEY_LENGTH,
    METADATA_MAX_KEYS,
    METADATA_MAX_STRING_LENGTH,
    RFC3339_OPTIONAL_OFFSET,
    CurrencyCode,
    MetaData,
)
from schemas.errors import MerchantErrorSchema, PaywayErrorSchema
from schemas.initials import CountryCode as InitialsCountryCode
from schemas.initials import SubbrandAlias
from schemas.me_order import (
    LANGUAGE_TAG,
    MAX_LANGUAGE_LENGTH,
    AddressSchema,
    HttpUrl,
    IpAddress,
    LanguageTag,
    PeriodId,
    StartDate,
)
from schemas.me_order import CountryCode as PaywayCountryCode
from schemas.oneclick import ACTION_FIELDS, ITEM_FIELDS, OPTIONAL_ACTION_FIELDS
from service.openapi.components import HEADERS, PARAMETERS, SECURITY_SCHEMES
from service.openapi.operations import OPERATIONS, TAGS
from service.openapi.patterns import anchored

OPENAPI_VERSION = "3.1.0"
TITLE = "order-service"
DESCRIPTION = """\
Creates orders for products and subscriptions. Merchant back ends send signed requests
(`x-public-key`, `x-date`, `x-token`); signed-in customers send a Bearer JWT to the
Payway-style endpoint under `/external/`. Every create accepts an `Idempotency-Key`.
Each order is announced as an `order.created` event (see `/asyncapi.json`)."""


def _one_field_not_null(schema: type[Schema]) -> dict[str, Any]:
    """JSON Schema for "at least one of the fields is present and not null"."""
    names = [field.data_key or name for name, field in schema().fields.items()]
    return {
        "anyOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names
        ]
    }


def _fields_per_action() -> dict[str, Any]:
    """JSON Schema for OneclickProductSchema's rule 2: the fields each action requires,
    and those it refuses (schemas.oneclick.ACTION_FIELDS, OPTIONAL_ACTION_FIELDS)."""
    variants = []
    for action, required in ACTION_FIELDS.items():
        accepted = required | OPTIONAL_ACTION_FIELDS.get(action, frozenset())
        properties: dict[str, Any] = {"action": {"const": action}}
        # A field the action refuses admits only null, which counts as absent; a field it
        # requires must not be null.
        properties.update({name: {"type": "null"} for name in sorted(set(ITEM_FIELDS) - accepted)})
        properties.update({name: {"not": {"type": "null"}} for name in sorted(required)})
        variants.append(
            {"title": action, "properties": properties, "required": ["action", *sorted(required)]}
        )
    return {"oneOf": variants}


# Rules a schema enforces in a @validates_schema method, which apispec cannot see.
SCHEMA_RULES: dict[str, dict[str, Any]] = {
    "Address": {
        **_one_field_not_null(AddressSchema),
        "description": "The customer's address; it becomes their default address for later "
        "purchases. At least one field must be given and not null.",
    },
    "OneclickProduct": {
        **_fields_per_action(),
        "description": "One product of the order and what to do with it: `purchase` takes "
        "`productCode` only; `upgrade` and `downgrade` take `subscriptionId` and the "
        "`productCode` to move to; `renew` takes `subscriptionId`, and `productCode` only "
        "if it names the subscription's own product. A field sent as null counts as absent.",
    },
}


def _service_version() -> str:
    try:
        return version("order-service")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


IP_ADDRESS: dict[str, Any] = {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
# What the custom fields of schemas/ accept, for the fields apispec only knows as strings.
CUSTOM_FIELDS: tuple[tuple[type[fields.Field[Any]], dict[str, Any]], ...] = (
    (CurrencyCode, {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 alphabetic code"}),
    (InitialsCountryCode, {"pattern": "^[A-Za-z]{2}$", "description": "ISO 3166-1 alpha-2"}),
    (PaywayCountryCode, {"pattern": "^[A-Za-z]{2}$", "description": "ISO 3166-1 alpha-2"}),
    (SubbrandAlias, {"pattern": "^[A-Za-z0-9_]{1,100}$"}),
    (PeriodId, {"pattern": "^[a-fA-F0-9]{24}$"}),
    (IpAddress, IP_ADDRESS),
    (HttpUrl, {"format": "uri", "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"}),
    # Not `format: date-time`: that requires an offset, and the service reads a date-time
    # without one as UTC.
    (
        StartDate,
        {
            "pattern": anchored(RFC3339_OPTIONAL_OFFSET),
        },
    ),
    (
        LanguageTag,
        {
            "minLength": 2,
            "maxLength": MAX_LANGUAGE_LENGTH,
            "pattern": anchored(LANGUAGE_TAG),
            "description": "BCP 47 language tag, e.g. sv-SE",
        },
    ),
)


def _custom_field(
    converter: Any, field: fields.Field[Any], ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """CUSTOM_FIELDS' attributes, never overriding what the field's own metadata says."""
    for field_class, attributes in CUSTOM_FIELDS:
        if isinstance(field, field_class):
            return {key: value for key, value in attributes.items() if key not in ret}
    return {}


def _metadata_field(converter: Any, field: fields.Field[Any], **_: Any) -> dict[str, Any]:
    """The merchant's flat key-value metaData (schemas.common.MetaData) as JSON Schema."""
    if not isinstance(field, MetaData):
        return {}
    return {
        "type": ["object", "null"] if field.allow_none else "object",
        "maxProperties": METADATA_MAX_KEYS,
        "propertyNames": {"minLength": 1, "maxLength": METADATA_MAX_KEY_LENGTH},
        "additionalProperties": {
            "type": ["string", "number", "boolean", "null"],
            "maxLength": METADATA_MAX_STRING_LENGTH,
        },
        "description": "Flat key-value object of the merchant, carried unchanged into the "
        f"order and its event: at most {METADATA_MAX_KEYS} keys of 1 to "
        f"{METADATA_MAX_KEY_LENGTH} characters; values string (up to "
        f"{METADATA_MAX_STRING_LENGTH}), number, boolean or null.",
    }


def served_operations(router: web.UrlDispatcher) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route, HEAD aside (aiohttp adds it to each GET)."""
    served: set[tuple[str, str]] = set()
    for route in router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        served.add((route.method.lower(), resource.canonical))
    return served


def build_openapi(served: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The document; with `served`, only the operations among those (method, path) pairs."""
    wanted = None if served is None else set(served)
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=TITLE,
        version=_service_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": DESCRIPTION},
        tags=TAGS,
    )
    assert plugin.converter is not None
    for attribute_function in (_metadata_field, _custom_field):
        plugin.converter.add_attribute_function(attribute_function)  # type: ignore[no-untyped-call]
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, parameter in PARAMETERS.items():
        spec.components.parameter(name, parameter["in"], copy.deepcopy(parameter))
    for name, header in HEADERS.items():
        spec.components.header(name, copy.deepcopy(header))
    spec.components.schema("MerchantError", schema=MerchantErrorSchema)
    spec.components.schema("PaywayError", schema=PaywayErrorSchema)

    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        if wanted is not None and (operation.method, operation.path) not in wanted:
            continue
        # apispec resolves schemas in place: hand it a copy, never the module's tables.
        paths.setdefault(operation.path, {})[operation.method] = copy.deepcopy(operation.spec)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    for name, extra in SCHEMA_RULES.items():
        if name in document["components"]["schemas"]:
            document["components"]["schemas"][name].update(extra)
    return document
