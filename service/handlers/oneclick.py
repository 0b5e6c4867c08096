"""POST /api/v3/buyers/{buyerId}/oneclick: purchase, upgrade, downgrade and renew in one
order paid with the buyer's saved payment method."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from schemas.oneclick import ONECLICK_REQUEST, to_oneclick_request
from service.domain.oneclick import (
    find_buyer,
    prepare_oneclick_order,
    resolve_oneclick_order,
)
from service.errors import ValidationFailed
from service.handlers.common import load_or_422, merchant_scope, read_signed_request
from service.pipeline import OrderPlan, create_order
from service.state import CONFIG

routes = web.RouteTableDef()


@routes.post("/api/v3/buyers/{buyerId}/oneclick")
async def create_oneclick_order(request: web.Request) -> web.Response:
    body, data, ctx = await read_signed_request(request, ga_required=False)
    event_source = request.app[CONFIG].event_source

    def plan() -> OrderPlan:
        # The path names the resource: an unknown buyer is 404 whatever the body holds.
        buyer = find_buyer(ctx.merchant, request.match_info["buyerId"])
        command = to_oneclick_request(load_or_422(ONECLICK_REQUEST, data))
        order = resolve_oneclick_order(ctx.merchant, buyer, command)
        created_at = datetime.now(UTC)
        return OrderPlan(
            prepare=lambda order_id: prepare_oneclick_order(
                order, order_id, ctx, created_at, event_source
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
