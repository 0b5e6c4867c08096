"""Coupon redemptions are counted in the order's transaction: a coupon limited to 5 is used
by exactly 5 orders however many requests race for it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import pytest

from service.catalog_load import parse_catalog, upsert_catalog
from service.config import Config
from service.db import create_connection
from service.state import CATALOG, POOL
from tests.initials.conftest import Post

RACE_KEY = ("pk_initials_race", "sk_initials_race_secret")
LIMIT = 5
REQUESTS = 40

RACE_CATALOG = {
    "merchants": [
        {
            "code": "initials_race",
            "name": "Coupon race",
            "default_currency": "USD",
            "order_prefix": "RACE",
            "precheck_autocharge": {"desktop": False, "mobile": False},
            "payment_page_url": "https://{host}/initial-billing/{order_id}",
            "default_host": "pay.race.example",
            "keys": [{"public_key": RACE_KEY[0], "secret": RACE_KEY[1], "status": "active"}],
            "products": [
                {
                    "code": "widget",
                    "name": "Widget",
                    "kind": "one_time",
                    "prices": {"USD": 1000, "GBP": 900},
                }
            ],
            "coupons": [
                {"code": "RACE5", "percent_off": 50, "max_redemptions": LIMIT},
                {"code": "USDONLY", "amount_off": {"USD": 100}},
            ],
        }
    ]
}


@pytest.fixture
def config(base_config: Config) -> Config:
    # 40 requests share 10 connections on a busy machine: give them time to take turns.
    return replace(base_config, db_acquire_timeout=15.0)


@pytest.fixture
async def race_merchant(client: Any, database_url: str) -> AsyncIterator[None]:
    conn = await create_connection(database_url)
    try:
        await upsert_catalog(conn, parse_catalog(orjson.dumps(RACE_CATALOG)))
    finally:
        await conn.close()
    # The app would pick the change up from NOTIFY; reading it now avoids waiting for that.
    app = client.server.app
    await app[CATALOG].refresh(app[POOL])
    assert "RACE5" in app[CATALOG].current.merchants_by_code["initials_race"].coupons
    yield


async def test_coupon_limit_holds_under_concurrency(
    race_merchant: None, post_initials: Post, db: asyncpg.Connection
) -> None:
    async def attempt(n: int) -> tuple[int, str | None]:
        body = {"product": {"code": "widget"}, "coupon": "RACE5", "sequence": f"racer-{n}"}
        response = await post_initials(body, key=RACE_KEY)
        payload = await response.json()
        return response.status, payload.get("error", {}).get("code")

    outcomes = Counter(await asyncio.gather(*(attempt(n) for n in range(REQUESTS))))
    assert outcomes == {(200, None): LIMIT, (422, "coupon_exhausted"): REQUESTS - LIMIT}

    used = await db.fetch(
        "SELECT o.id, o.total_amount FROM orders o JOIN merchants m ON m.id = o.merchant_id "
        "WHERE m.code = 'initials_race' AND o.coupon_code = 'RACE5'"
    )
    assert len(used) == LIMIT
    assert {r["total_amount"] for r in used} == {500}
    assert await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = 'RACE5'") == LIMIT
    events = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::text[])", [r["id"] for r in used]
    )
    assert events == LIMIT


async def test_amount_coupon_needs_the_orders_currency(
    race_merchant: None, post_initials: Post
) -> None:
    response = await post_initials(
        {"product": {"code": "widget", "currency": "GBP"}, "coupon": "USDONLY"}, key=RACE_KEY
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "coupon_currency_not_supported"
    assert "GBP" in error["message"]

    response = await post_initials(
        {"product": {"code": "widget"}, "coupon": "USDONLY"}, key=RACE_KEY
    )
    assert response.status == 200
