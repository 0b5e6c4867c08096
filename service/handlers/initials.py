"""POST /api/v2/initials/url: an order for one product, answered with its payment-page URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from schemas.common import flatten_errors
from schemas.initials import initials_url_request_schema
from service.domain.initials import (
    BUYER_REQUIRED,
    buyer_required,
    buyer_required_error,
    plan_initials_order,
    prepare_initials_order,
)
from service.errors import ValidationFailed
from service.handlers.common import merchant_scope, read_signed_request
from service.pipeline import OrderPlan, create_order
from service.state import CONFIG

routes = web.RouteTableDef()


def load_initials_body(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The body loaded by the schema, with the shop's buyer rule; every bad field in one 422."""
    shop_needs_buyer = data.get("buyer") is None and buyer_required(source)
    try:
        loaded: dict[str, Any] = initials_url_request_schema.load(data)
    except ValidationError as exc:
        fields = flatten_errors(exc.messages)
        if shop_needs_buyer:
            fields.setdefault("buyer", []).append(BUYER_REQUIRED)
        raise ValidationFailed(
            "The request has invalid fields: " + ", ".join(fields), fields=fields
        ) from None
    if shop_needs_buyer:
        raise buyer_required_error()
    return loaded


@routes.post("/api/v2/initials/url")
async def create_initials_url_order(request: web.Request) -> web.Response:
    body, data, ctx = await read_signed_request(request, ga_required=True)
    loaded = load_initials_body(data, ctx.source)
    event_source = request.app[CONFIG].event_source

    def plan() -> OrderPlan:
        created_at = datetime.now(UTC)
        order = plan_initials_order(ctx.merchant, loaded, created_at)
        return OrderPlan(
            prepare=lambda order_id: prepare_initials_order(
                order, ctx, order_id, created_at, event_source
            )
        )

    return await create_order(
        request,
        body,
        data,
        idempotency_scope=merchant_scope(ctx.merchant),
        plan=plan,
        reused_error=ValidationFailed,
    )
