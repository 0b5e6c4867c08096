"""Writes an order with its items, outbox event and idempotency record in one transaction,
one round trip (the place_order function in sql/migrations/0003_place_order.sql)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from service.errors import Conflict, ValidationFailed
from service.idempotency import IdempotencyClaim
from service.sql import queries

MAX_ID_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class PreparedOrder:
    """Everything one order writes. `row` has every column of `orders` that is NOT NULL
    (jsonb_populate_record does not apply column defaults)."""

    row: dict[str, Any]
    items: list[dict[str, Any]]
    event: dict[str, Any]  # event_id, event_type, routing_key, payload
    response_status: int
    response_body: Any


async def write_order(
    pool: asyncpg.Pool,
    prepare: Callable[[str], PreparedOrder],
    new_id: Callable[[], str],
    claim: IdempotencyClaim | None = None,
) -> tuple[PreparedOrder, str | None]:
    """Writes the order `prepare(order_id)` builds; a new id is drawn if one collides.

    Returns the order written and its reference (Payway-style orders only).
    """
    for _ in range(MAX_ID_ATTEMPTS):
        prepared = prepare(new_id())
        try:
            async with pool.acquire() as conn:
                reference: str | None = await conn.fetchval(
                    queries.place_order,
                    prepared.row,
                    prepared.items,
                    prepared.event,
                    claim.scope if claim else None,
                    claim.key if claim else None,
                    prepared.response_status,
                    prepared.response_body if claim else None,
                )
            return prepared, reference
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "orders_pkey":
                continue
            if exc.constraint_name == "orders_request_token_key":
                raise Conflict(
                    "This signed request was already used to create an order; sign each "
                    "request anew (new x-date) or send an Idempotency-Key to retry safely",
                    code="request_replayed",
                ) from None
            raise
        except asyncpg.RaiseError as exc:
            if exc.args and str(exc.args[0]) == "coupon_exhausted":
                raise ValidationFailed(
                    "The coupon has reached its redemption limit",
                    code="coupon_exhausted",
                    fields={"coupon": ["coupon has reached its redemption limit"]},
                ) from None
            raise
    raise RuntimeError("could not draw a free order id")
