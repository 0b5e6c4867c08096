"""Writes an order with its items, outbox event and idempotency record in one transaction,
one round trip (the place_order function in sql/migrations/0003_place_order.sql)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from service.db import DATABASE_DOWN, run_again_if_lost
from service.errors import Conflict, ServiceUnavailable, ValidationFailed
from service.idempotency import IdempotencyClaim
from service.order_writer import OrderWriter
from service.records import record
from service.sql import queries

MAX_ID_ATTEMPTS = 5

# Every column of `orders`: jsonb_populate_record fills absent keys with NULL, not with
# the column default, so each row starts from this and sets what it knows.
ORDER_COLUMNS = (
    "id", "merchant_id", "family", "status", "reference", "currency", "base_amount",
    "discount_percent", "discount_amount", "coupon_id", "coupon_code", "coupon_amount",
    "total_amount", "autocharge", "autocharge_explicit", "is_mobile", "subbrand",
    "payment_url", "sequence", "buyer_id", "buyer", "charge_method_id", "customer_account",
    "buyer_ip", "source", "source_id", "ga_client_id", "request_token", "metadata",
    "details", "created_at",
)  # fmt: skip


_ORDER_COLUMN_SET = frozenset(ORDER_COLUMNS)
# Every column in ORDER_COLUMNS' order, with the defaults an order row starts from.
_ORDER_ROW_START: dict[str, Any] = {
    **dict.fromkeys(ORDER_COLUMNS),
    "status": "created",
    "discount_amount": 0,
    "coupon_amount": 0,
}


def order_row(**values: Any) -> dict[str, Any]:
    if not _ORDER_COLUMN_SET.issuperset(values):
        raise KeyError(f"not columns of orders: {sorted(values.keys() - _ORDER_COLUMN_SET)}")
    row = _ORDER_ROW_START.copy()
    row.update(values)
    return row


def order_item_row(
    order_id: str,
    position: int,
    *,
    product_id: int,
    product_code: str,
    unit_amount: int,
    action: str = "purchase",
    subscription_id: str | None = None,
    period_id: str | None = None,
) -> dict[str, Any]:
    """One row of order_items, every column set (jsonb_populate_recordset applies no
    defaults either)."""
    return {
        "order_id": order_id,
        "position": position,
        "action": action,
        "product_id": product_id,
        "product_code": product_code,
        "subscription_id": subscription_id,
        "period_id": period_id,
        "unit_amount": unit_amount,
        "quantity": 1,
        "amount": unit_amount,
    }


@record
class PreparedOrder:
    """Everything one order writes. `row` has every column of `orders` that is NOT NULL
    (jsonb_populate_record does not apply column defaults)."""

    row: dict[str, Any]
    items: list[dict[str, Any]]
    event: dict[str, Any]  # event_id, event_type, routing_key, payload
    response_status: int
    response_body: Any


async def write_order(
    writer: OrderWriter,
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
            reference = await writer.place_order(
                (
                    prepared.row,
                    prepared.items,
                    prepared.event,
                    claim.scope if claim else None,
                    claim.key if claim else None,
                    prepared.response_status,
                    prepared.response_body if claim else None,
                    claim.claim_id if claim else None,
                )
            )
            return prepared, reference
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "orders_pkey":
                continue
            if exc.constraint_name == "orders_request_token_key":
                created = await _order_of_request(writer.pool, prepared.row)
                raise Conflict(
                    f"This signed request was already used to create order {created}; "
                    "sign each request anew (new x-date), or send an Idempotency-Key to "
                    "retry safely and get the first answer again",
                    code="request_replayed",
                ) from None
            raise
        except asyncpg.RaiseError as exc:
            if exc.args and str(exc.args[0]) == "idempotency_claim_lost":
                raise Conflict(
                    "A retry with this Idempotency-Key took it over while this request was "
                    "still running; this request wrote nothing, and the retry's answer stands",
                    code="idempotency_key_in_use",
                ) from None
            if exc.args and str(exc.args[0]) == "coupon_exhausted":
                raise ValidationFailed(
                    "The coupon has reached its redemption limit",
                    code="coupon_exhausted",
                    fields={"coupon": ["coupon has reached its redemption limit"]},
                ) from None
            raise
        except asyncpg.TransactionRollbackError:
            # PostgreSQL rolled the order back for a conflict with concurrent writes (a
            # deadlock it lost as often as the writer tries again): nothing was written,
            # and the same request sent again can succeed.
            raise ServiceUnavailable(
                "The order conflicted with concurrent writes and was rolled back; nothing "
                "was written, send it again",
                code="database_conflict",
                headers={"Retry-After": "1"},
            ) from None
    raise RuntimeError("could not draw a free order id")


async def _order_of_request(pool: asyncpg.Pool, row: dict[str, Any]) -> str:
    """The id of the order this signed request created (a merchant whose first answer was
    lost can read it), or "(unknown)" if the database does not tell right now."""
    try:
        order_id: str | None = await run_again_if_lost(
            pool,
            lambda conn: conn.fetchval(
                queries.order_of_request_token, row["merchant_id"], row["request_token"]
            ),
        )
    except DATABASE_DOWN:
        order_id = None
    return order_id or "(unknown)"
