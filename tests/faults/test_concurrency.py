"""Coupon redemption limit and Idempotency-Key under 50-way concurrency."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest

from tests.faults.conftest import Launch, report
from tests.faults.harness import (
    Books,
    EventConsumer,
    LogicalRequest,
    check_books,
    initials_body,
    post_initials,
)

CONCURRENCY = 50
COUPON_LIMIT = 10


async def _fire(base_url: str, bodies: list[bytes], key: str | None = None) -> list[LogicalRequest]:
    """Every body posted at once, each on its own connection."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        attempts = await asyncio.gather(
            *(post_initials(session, base_url, raw, key) for raw in bodies)
        )
    return [LogicalRequest(key or a.token, [a]) for a in attempts]


async def test_coupon_limit_holds_under_50_concurrent_orders(
    launch: Launch,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = f"LIMIT{uuid.uuid4().hex[:8].upper()}"
    await db.execute(
        "INSERT INTO coupons (merchant_id, code, percent_off, max_redemptions) "
        "SELECT id, $1, 10, $2 FROM merchants WHERE code = 'eyezy'",
        code,
        COUPON_LIMIT,
    )
    service = await launch("serve", "--workers", "1", DB_POOL_MAX="20")
    base_url = f"http://127.0.0.1:{await service.serving_port()}"
    bodies = [initials_body(coupon=code, metaData={"n": n}) for n in range(CONCURRENCY)]
    requests = await _fire(base_url, bodies)

    books = await check_books("coupon limit, 50 at once", db, requests, consumer)
    assert await service.stop() == 0, service.output()
    finals = [r.final for r in requests]
    books.notes["422 coupon_exhausted"] = sum(a.code == "coupon_exhausted" for a in finals)
    report(capsys, books.line())
    books.assert_clean()
    assert books.ok == COUPON_LIMIT
    assert books.notes["422 coupon_exhausted"] == CONCURRENCY - COUPON_LIMIT
    redeemed = await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = $1", code)
    assert redeemed == COUPON_LIMIT
    assert await db.fetchval("SELECT count(*) FROM orders WHERE coupon_code = $1", code) == 10


async def test_one_idempotency_key_under_50_concurrent_requests(
    launch: Launch,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = await launch("serve", "--workers", "1", DB_POOL_MAX="20")
    base_url = f"http://127.0.0.1:{await service.serving_port()}"
    body = initials_body(metaData={"idempotency": uuid.uuid4().hex})
    key = f"idem-{uuid.uuid4().hex}"
    attempts = [r.final for r in await _fire(base_url, [body] * CONCURRENCY, key)]
    # One logical request: it is the key, whatever each concurrent attempt got.
    winner = next(a for a in attempts if a.status == 200 and not a.replayed)
    request = LogicalRequest(key, [a for a in attempts if a is not winner] + [winner])

    books: Books = await check_books("one Idempotency-Key, 50 at once", db, [request], consumer)
    assert await service.stop() == 0, service.output()
    books.notes["attempts answered 200"] = sum(a.status == 200 for a in attempts)
    books.notes["409 idempotency_key_in_use"] = sum(
        a.code == "idempotency_key_in_use" for a in attempts
    )
    report(capsys, books.line())
    books.assert_clean()
    assert books.orders_stored == 1
    assert {a.order_id for a in attempts if a.status == 200} == {winner.order_id}
    assert all(a.status == 200 or a.code == "idempotency_key_in_use" for a in attempts), attempts
