"""The catalog a running service holds follows `catalog load` (CatalogCache.follow): at
once by NOTIFY, and soon after a load its listener could not hear, whether its
connection was cut or stopped answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service import catalog as catalog_module
from service.catalog import LISTENER_NAME, CatalogCache
from service.catalog_load import load_catalog_file
from service.config import Config
from service.db import create_pool
from tests.conftest import DEMO_CATALOG
from tests.foundation.test_catalog_load import demo, write
from tests.support.tcp_proxy import TcpProxy

# The listener's own fallback (its poll, then its ping) is far beyond these in the tests.
POLL_SECONDS = 60.0
SEEN_WITHIN = 5.0


@pytest.fixture
async def demo_database_url(migrated_database_url: str) -> str:
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    return migrated_database_url


@pytest.fixture
async def pool(demo_database_url: str, config: Config) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(replace(config, database_url=demo_database_url))
    yield created
    await created.close()


def first_product_price(cache: CatalogCache) -> dict[str, int]:
    document = demo()
    merchant = document["merchants"][0]
    product = merchant["products"][0]
    return cache.current.merchants_by_code[merchant["code"]].products[product["code"]].prices


async def load_new_price(url: str, tmp_path: Path, amount: int) -> None:
    document = demo()
    document["merchants"][0]["products"][0]["prices"] = {"USD": amount}
    await load_catalog_file(url, write(tmp_path, document))


async def until_price(cache: CatalogCache, prices: dict[str, int]) -> None:
    async with asyncio.timeout(SEEN_WITHIN):
        while first_product_price(cache) != prices:
            await asyncio.sleep(0.02)


async def test_a_load_reaches_the_running_catalog_at_once(
    demo_database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    cache = CatalogCache()
    async with cache.follow(pool, demo_database_url, poll_seconds=POLL_SECONDS):
        await until_listening(pool)
        await load_new_price(demo_database_url, tmp_path, 1234)
        await until_price(cache, {"USD": 1234})


async def test_a_load_while_the_listeners_connection_is_cut_is_read_at_once(
    demo_database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    # The listener's backend terminated (as a database restart does), and a load committed
    # before it could listen again: its NOTIFY went to nobody. Before, the listener noticed
    # only at its next poll, 30 s later by default.
    cache = CatalogCache()
    async with cache.follow(pool, demo_database_url, poll_seconds=POLL_SECONDS):
        await until_listening(pool)
        async with pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1 AND datname = current_database()",
                LISTENER_NAME,
            )
            await load_new_price(demo_database_url, tmp_path, 2345)
        await until_price(cache, {"USD": 2345})


async def test_a_listener_whose_connection_stops_answering_reads_through_the_pool(
    demo_database_url: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The route to the listener's connection freezes (nothing answers, nothing is cut);
    # the pool's connections still work. Before, the listener's ping waited forever and
    # the catalog never changed again.
    monkeypatch.setattr(catalog_module, "LISTENER_PING_TIMEOUT", 0.3)
    cache = CatalogCache()
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        listener_dsn = proxy.url_for(demo_database_url)
        async with cache.follow(pool, listener_dsn, poll_seconds=0.5):
            await until_listening(pool)
            proxy.freeze()
            await load_new_price(demo_database_url, tmp_path, 3456)
            await until_price(cache, {"USD": 3456})
        await proxy.cut()


async def until_listening(pool: asyncpg.Pool) -> None:
    async with asyncio.timeout(SEEN_WITHIN), pool.acquire() as conn:
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database() AND query LIKE 'LISTEN%'",
            LISTENER_NAME,
        ):
            await asyncio.sleep(0.02)


async def test_a_listen_that_is_never_answered_is_given_up(
    demo_database_url: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The connection stops answering between the connect and the LISTEN: before, the
    # listener waited there for good, and the catalog never changed again.
    monkeypatch.setattr(catalog_module, "LISTENER_PING_TIMEOUT", 0.3)
    real_add_listener = asyncpg.Connection.add_listener
    calls = 0

    async def first_never_answered(self: asyncpg.Connection, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()
        await real_add_listener(self, *args)

    monkeypatch.setattr(asyncpg.Connection, "add_listener", first_never_answered)
    cache = CatalogCache()
    async with cache.follow(pool, demo_database_url, poll_seconds=POLL_SECONDS):
        await load_new_price(demo_database_url, tmp_path, 4567)
        await until_price(cache, {"USD": 4567})
        await until_listening(pool)
