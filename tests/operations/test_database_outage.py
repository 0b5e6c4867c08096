"""Database outage: 503 database_unavailable within the acquire timeout, readiness says
so, and the service recovers by itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from service.app import create_app
from service.config import Config
from service.db import with_database
from service.state import POOL
from tests.faults.harness import initials_body, signed, wait_until
from tests.operations.conftest import ME_ORDER_BODY, ME_ORDER_PATH
from tests.support.tcp_proxy import TcpProxy

ACQUIRE_TIMEOUT = 0.5
# The answer may take the acquire timeout plus scheduling on a busy machine, never more.
ANSWER_WITHIN = ACQUIRE_TIMEOUT + 1.0


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", 5432) as running:
        yield running


async def post_initials(client: Any, idempotency_key: str | None = None) -> Any:
    raw = initials_body()
    headers = signed(raw)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post("/api/v2/initials/url", data=raw, headers=headers)


async def post_me_order(client: Any, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return await client.post(ME_ORDER_PATH, json=ME_ORDER_BODY, headers=headers)


async def orders_stored(config: Config) -> int:
    conn = await asyncpg.connect(config.database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM orders")
        return count
    finally:
        await conn.close()


async def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


async def test_outage_answers_503_and_recovers(
    aiohttp_client: Any, config: Config, proxy: TcpProxy, customer_token: str
) -> None:
    app = create_app(
        replace(
            config,
            database_url=proxy.url_for(config.database_url),
            db_acquire_timeout=ACQUIRE_TIMEOUT,
        )
    )
    client = await aiohttp_client(app)
    assert (await post_initials(client)).status == 200

    await proxy.cut()
    response, elapsed = await timed(post_initials(client))
    assert response.status == 503 and elapsed < ANSWER_WITHIN
    body = await response.json()
    assert body["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"

    response, elapsed = await timed(post_me_order(client, customer_token))
    assert response.status == 503 and elapsed < ANSWER_WITHIN
    assert (await response.json())["code"] == "database_unavailable"

    ready = await client.get("/health/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"] == "down"

    await proxy.restore()
    # No restart: the next request gets a fresh connection.
    assert (await post_initials(client)).status == 200
    assert (await post_me_order(client, customer_token)).status == 200
    ready = await client.get("/health/ready")
    assert (await ready.json())["checks"]["database"] == "ok"


async def test_exhausted_pool_answers_503_within_the_acquire_timeout(
    aiohttp_client: Any, config: Config
) -> None:
    app = create_app(replace(config, db_pool_max=1, db_acquire_timeout=ACQUIRE_TIMEOUT))
    client = await aiohttp_client(app)
    # Every connection of the pool is taken (a stuck query would do the same).
    async with app[POOL].acquire(timeout=5) as _held:
        response, elapsed = await timed(post_initials(client))
    assert response.status == 503
    assert ACQUIRE_TIMEOUT <= elapsed < ANSWER_WITHIN
    assert (await response.json())["error"]["code"] == "database_unavailable"
    assert (await post_initials(client)).status == 200


async def test_an_order_waiting_for_a_writer_then_a_connection_gets_503_within_one_timeout(
    aiohttp_client: Any, config: Config
) -> None:
    # One order writer and one connection, held here (no relay to wait for it too): the
    # first order's writer waits for the connection, and the second order, sent half the
    # timeout later, waits for the writer, then would wait for the connection in its turn.
    # Each gets its 503 one DB_ACQUIRE_TIMEOUT after it was sent, not one wait for the
    # writer and another for the connection (1.5 s for the second here).
    timeout = 1.0
    app = create_app(
        replace(
            config,
            db_pool_max=1,
            order_writers=1,
            db_acquire_timeout=timeout,
            relay_enabled=False,
        )
    )
    client = await aiohttp_client(app)
    pool = app[POOL]
    async with pool.acquire(timeout=5) as _held:
        first = asyncio.create_task(timed(post_initials(client)))
        async with asyncio.timeout(5):
            # asyncpg tells no count of waiters; its queue of connection holders does.
            while not pool._queue._getters:
                await asyncio.sleep(0.001)
        await asyncio.sleep(timeout / 2)  # the writer waits for the connection meanwhile
        second = await timed(post_initials(client))
        answers = [await first, second]
    for response, elapsed in answers:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "database_unavailable"
        assert timeout <= elapsed < timeout + 0.3, [took for _, took in answers]
    assert (await post_initials(client)).status == 200


async def test_down_at_start_answers_503_not_401_until_the_catalog_is_read(
    aiohttp_client: Any, config: Config, proxy: TcpProxy, customer_token: str
) -> None:
    # Without its catalog the service knows no key: refusing them as unknown (401) would
    # tell a merchant its credentials are wrong when it should retry.
    await proxy.cut()
    app = create_app(
        replace(
            config,
            database_url=proxy.url_for(config.database_url),
            db_acquire_timeout=ACQUIRE_TIMEOUT,
            migrate_on_start=False,
        )
    )
    client = await aiohttp_client(app)

    response = await post_initials(client)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"
    response = await post_me_order(client, customer_token)
    assert response.status == 503
    assert (await response.json())["code"] == "database_unavailable"
    ready = await client.get("/health/ready")
    assert ready.status == 503
    checks = (await ready.json())["checks"]
    assert (checks["database"], checks["catalog"]) == ("down", "down")

    await proxy.restore()
    # The catalog listener reads the catalog as soon as the database answers.
    async with asyncio.timeout(10):
        while (await client.get("/health/ready")).status != 200:
            await asyncio.sleep(0.05)
    assert (await post_initials(client)).status == 200
    assert (await post_me_order(client, customer_token)).status == 200


async def test_a_database_turning_connections_away_answers_503(
    aiohttp_client: Any, config: Config, db: asyncpg.Connection, customer_token: str
) -> None:
    # PostgreSQL up but refusing new connections to this database (as during maintenance,
    # or once it is dropped): the client may retry, as with any outage.
    client = await aiohttp_client(create_app(config))
    assert (await post_initials(client)).status == 200
    quoted = await db.fetchval("SELECT quote_ident(current_database())")
    # A database cannot be closed from a session of its own.
    admin = await asyncpg.connect(with_database(config.database_url, "postgres"))
    # ALTER DATABASE takes no bind parameters; the name is quoted as an identifier.
    await admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
    try:
        # The pool's open connections would still work; each is replaced on its next use.
        await client.app[POOL].expire_connections()
        for response in (
            await post_initials(client),
            await post_me_order(client, customer_token),
        ):
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "1"
            body = await response.json()
            assert "database_unavailable" in (body.get("code"), body.get("error", {}).get("code"))
    finally:
        await admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
        await admin.close()
    assert (await post_initials(client)).status == 200


async def test_a_database_that_stops_answering_gets_503_within_the_statement_timeout(
    aiohttp_client: Any, config: Config, proxy: TcpProxy
) -> None:
    # A frozen host: connections stay open, nothing is refused, nothing answers. The
    # order's statement gives up after its timeout (the command timeout, 2 s here) and the
    # order is answered then, not once the connection has also been given back.
    frozen = replace(
        config,
        database_url=proxy.url_for(config.database_url),
        db_acquire_timeout=ACQUIRE_TIMEOUT,
        db_statement_timeout_ms=1000,
    )
    client = await aiohttp_client(create_app(frozen))
    assert (await post_initials(client)).status == 200  # the pool holds open connections
    proxy.freeze()
    try:
        response, took = await timed(post_initials(client))
    finally:
        proxy.thaw()
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "database_unavailable"
    assert took < frozen.db_command_timeout + 1.0


async def test_readiness_with_a_database_that_stops_answering_is_503_within_the_acquire_timeout(
    aiohttp_client: Any, config: Config, proxy: TcpProxy
) -> None:
    # The probe's ping, cut off at its deadline on a connection the pool kept, gives the
    # connection back at once (closed) instead of waiting for asyncpg to settle the
    # cancelled query, which a frozen host never does.
    frozen = replace(
        config, database_url=proxy.url_for(config.database_url), db_acquire_timeout=ACQUIRE_TIMEOUT
    )
    client = await aiohttp_client(create_app(frozen))
    assert (await client.get("/health/ready")).status == 200  # the pool keeps its connection
    proxy.freeze()
    try:
        response, took = await timed(client.get("/health/ready"))
    finally:
        proxy.thaw()
    assert response.status == 503
    assert (await response.json())["checks"]["database"] == "down"
    assert took < ANSWER_WITHIN
    assert (await client.get("/health/ready")).status == 200


async def test_pooled_connections_terminated_under_load_lose_no_order_and_write_none_twice(
    aiohttp_client: Any, config: Config, customer_token: str
) -> None:
    # PostgreSQL terminates the service's connections (a restart, a failover) while orders
    # arrive. A pooled connection whose FATAL error asyncpg had read, and not yet its
    # close, refused the next query with InternalClientError: 500 internal_error (about a
    # quarter of the orders in ten rounds), and an Idempotency-Key claim left in progress.
    # Then each order of a batch whose connection was lost got 503 (5-30 of the 200), some
    # of them written, and so did an Idempotency-Key claim on a terminated connection:
    # the writer now writes such a batch again on a new connection, a claim runs again on
    # one, and every order is answered 200 and stored once.
    client = await aiohttp_client(create_app(config))
    admin = await asyncpg.connect(with_database(config.database_url, "postgres"))
    database = config.database_url.rsplit("/", 1)[1]
    answers: list[tuple[int, str | None]] = []
    stored_before = await orders_stored(config)
    try:
        for round_number in range(10):
            posting = [
                asyncio.create_task(
                    post_initials(client, f"outage-{uuid.uuid4()}" if n % 4 == 1 else None)
                    if n % 2
                    else post_me_order(client, customer_token)
                )
                for n in range(20)
            ]
            await asyncio.sleep(0.005 * (round_number % 5))
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            for response in await asyncio.gather(*posting):
                body = await response.json()
                code = body.get("error", {}).get("code") if "error" in body else body.get("code")
                answers.append((response.status, code))
    finally:
        await admin.close()
    assert Counter(status for status, _ in answers) == {200: 200}, Counter(answers)
    assert await orders_stored(config) == stored_before + 200


async def test_readiness_whose_pooled_connection_is_lost_under_its_ping_asks_a_new_one(
    aiohttp_client: Any, config: Config, proxy: TcpProxy
) -> None:
    # A database restart ends the pooled connections, and asyncpg finds a dead one only
    # when it uses it: the first probe after a restart said 503, and a load balancer took
    # the instance out for a probe period with the database back.
    client = await aiohttp_client(
        create_app(replace(config, database_url=proxy.url_for(config.database_url)))
    )
    assert (await client.get("/health/ready")).status == 200  # the pool keeps its connection
    proxy.freeze()
    probing = asyncio.create_task(client.get("/health/ready"))
    assert await wait_until(lambda: proxy.held >= 1, 10)  # the ping, held back
    await proxy.reset()
    response = await probing
    assert response.status == 200, await response.text()
    assert (await response.json())["checks"]["database"] == "ok"
