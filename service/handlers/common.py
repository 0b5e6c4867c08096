"""What the merchant endpoints share: reading a signed request, loading a body with a
schema, and the columns every order row carries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError

from events.order_data import RequestOrigin, isoformat_of
from schemas.common import flatten_errors
from service.auth.merchant import MerchantRequest, authenticate, read_merchant_headers
from service.catalog import Merchant
from service.errors import ValidationFailed
from service.middleware import parse_json_object, read_body
from service.state import CATALOG, CONFIG, MERCHANT_CODE


def merchant_order_columns(ctx: MerchantRequest, created_at: datetime) -> dict[str, Any]:
    """The columns a signed merchant request gives every order it creates."""
    return {
        "merchant_id": ctx.merchant.id,
        "buyer_ip": ctx.buyer_ip,
        "source": ctx.source,
        "source_id": ctx.source_id,
        "ga_client_id": ctx.ga_client_id,
        "request_token": ctx.token,
        "created_at": isoformat_of(created_at),
    }


def merchant_scope(merchant: Merchant) -> str:
    """Idempotency keys of merchant endpoints are scoped to the merchant."""
    return f"merchant:{merchant.id}"


def request_origin(ctx: MerchantRequest) -> RequestOrigin:
    """The request headers worth keeping in the order-created event."""
    return RequestOrigin(
        buyer_ip=ctx.buyer_ip,
        source=ctx.source,
        source_id=ctx.source_id,
        ga_client_id=ctx.ga_client_id,
    )


async def read_signed_request(
    request: web.Request, *, ga_required: bool, json_body: bool = True
) -> tuple[bytes, dict[str, Any], MerchantRequest]:
    """Body bytes, the parsed JSON object and the authenticated merchant context.

    Order of checks: size limit and encoding (413/415/400), signature (401), other headers
    (422), then the body (400).
    """
    body = await read_body(request)
    merchant, token = authenticate(
        request, body, request.app[CATALOG].snapshot(), request.app[CONFIG].signature_window_seconds
    )
    request[MERCHANT_CODE] = merchant.code
    ctx = read_merchant_headers(request, merchant, token, ga_required=ga_required)
    data = parse_json_object(request, body) if json_body else {}
    return body, data, ctx


async def read_signed_read_request(request: web.Request) -> Merchant:
    """The merchant of a signed read (GET): only x-public-key, x-date and x-token count,
    since a read creates no order that would keep the buyer's headers."""
    body = await read_body(request)
    merchant, _ = authenticate(
        request, body, request.app[CATALOG].snapshot(), request.app[CONFIG].signature_window_seconds
    )
    request[MERCHANT_CODE] = merchant.code
    return merchant


def load_or_422(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """The body loaded by `schema`, or a 422 listing every bad field by its path."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        fields = flatten_errors(exc.messages)
        raise ValidationFailed(
            "The request has invalid fields: " + ", ".join(fields), fields=fields
        ) from None
    return loaded
