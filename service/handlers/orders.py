"""GET /api/v3/orders/{orderId}: a merchant reads one of its orders, of any family."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from aiohttp import web

from service.db import run_again_if_lost
from service.domain.ip_addresses import ip_text
from service.errors import NotFound
from service.handlers.common import read_signed_read_request
from service.middleware import json_dumps
from service.sql import queries
from service.state import ORDER_ID, POOL

routes = web.RouteTableDef()

# 8 base62 characters (merchant endpoints) or 24 hex (the Payway-style endpoint).
ORDER_ID_FORMAT = re.compile(r"^([A-Za-z0-9]{8}|[a-f0-9]{24})$")


def order_not_found() -> NotFound:
    return NotFound(
        "Order not found", code="order_not_found", fields={"orderId": ["unknown order"]}
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def order_entity(row: Mapping[str, Any]) -> dict[str, Any]:
    """The stored order as the merchant sees it; columns a family does not use are null."""
    coupon_code = row["coupon_code"]
    return {
        "id": row["id"],
        "reference": row["reference"],
        "status": row["status"],
        "family": row["family"],
        "items": row["items"],
        "currency": row["currency"],
        "baseAmount": row["base_amount"],
        "reductions": {
            "discount": {"percent": row["discount_percent"], "amount": row["discount_amount"]},
            "coupon": (
                {"code": coupon_code, "amount": row["coupon_amount"]} if coupon_code else None
            ),
        },
        "total": row["total_amount"],
        "autocharge": {"value": row["autocharge"], "explicit": row["autocharge_explicit"]},
        "isMobile": row["is_mobile"],
        "subbrand": row["subbrand"],
        "paymentUrl": row["payment_url"],
        "sequence": row["sequence"],
        "buyerId": _text(row["buyer_id"]),
        "buyer": row["buyer"],
        "chargeMethodId": row["charge_method_id"],
        "customerAccount": row["customer_account"],
        "buyerIp": None if row["buyer_ip"] is None else ip_text(row["buyer_ip"]),
        "source": row["source"],
        "sourceId": row["source_id"],
        "googleAnalyticsClientId": row["ga_client_id"],
        "metaData": row["metadata"],
        "details": row["details"],
        "createdAt": row["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


@routes.get("/api/v3/orders/{orderId}")
async def get_order(request: web.Request) -> web.Response:
    merchant = await read_signed_read_request(request)
    order_id = request.match_info["orderId"]
    if not ORDER_ID_FORMAT.match(order_id):
        raise order_not_found()
    row = await run_again_if_lost(
        request.app[POOL], lambda conn: conn.fetchrow(queries.order_by_id, order_id, merchant.id)
    )
    if row is None:
        raise order_not_found()
    request[ORDER_ID] = order_id
    return web.json_response(
        {"data": order_entity(row), "meta": {"type": "entity"}}, dumps=json_dumps
    )
