"""PostgreSQL connections cut mid-load and restored.

A request whose connection drops after its statement reached the server may have
committed although the client got a 503: that is why a client retries with an
Idempotency-Key, and these clients do. The books hold per logical request (all its
attempts): a final 200 has exactly its order and event, anything else left nothing. The
service runs with short database timeouts, so a claim whose request lost its connection
goes stale in seconds and every request ends in a 200.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import asyncpg
import pytest

from service.config import Config
from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until
from tests.support.tcp_proxy import TcpProxy

ACQUIRE_TIMEOUT = 1.0
STATEMENT_TIMEOUT_MS = 1000


async def test_database_cut_mid_load_loses_nothing(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stale_seconds = replace(
        config, db_acquire_timeout=ACQUIRE_TIMEOUT, db_statement_timeout_ms=STATEMENT_TIMEOUT_MS
    ).idempotency_claim_stale_seconds
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        service = await launch(
            "serve",
            "--workers",
            "1",
            DATABASE_URL=proxy.url_for(config.database_url),
            DB_ACQUIRE_TIMEOUT=ACQUIRE_TIMEOUT,
            DB_STATEMENT_TIMEOUT_MS=STATEMENT_TIMEOUT_MS,
        )
        port = await service.serving_port()
        load = Load(f"http://127.0.0.1:{port}", clients=8, retry=True)
        load.start()
        assert await wait_until(lambda: len(consumer.deliveries) >= 30, 20)

        await proxy.cut()
        cut_at = len(load.attempts)
        await asyncio.sleep(1.5)
        during_cut = load.attempts[cut_at:]
        await proxy.restore()
        restored = time.monotonic()
        # The service recovers by itself: the next attempts succeed again.
        assert await wait_until(lambda: load.attempts[-1].status == 200, 15)
        recovered_in = time.monotonic() - restored
        await asyncio.sleep(0.5)
        # A key whose claim committed as its connection dropped answers 409 until stale.
        await load.stop(retry_deadline=stale_seconds + 2)

        books = await check_books("PostgreSQL cut", db, load.requests, consumer)
        assert await service.stop() == 0, service.output()

    attempts = load.attempts
    books.notes["503s"] = sum(a.status == 503 for a in attempts)
    books.notes["503s whose order had committed (replayed 200)"] = sum(
        any(a.status == 503 for a in r.attempts) and r.final.replayed for r in load.requests
    )
    books.notes["recovered in ms"] = round(recovered_in * 1000)
    books.notes["409 idempotency_key_in_use before a 200"] = sum(
        any(a.code == "idempotency_key_in_use" for a in r.attempts) for r in load.requests
    )
    report(capsys, books.line())
    books.assert_clean()
    assert [r.final.status for r in load.requests] == [200] * len(load.requests), [
        (r.key, [(a.status, a.code) for a in r.attempts])
        for r in load.requests
        if r.final.status != 200
    ]
    unavailable = [a for a in during_cut if a.status == 503]
    assert unavailable and {a.code for a in unavailable} == {"database_unavailable"}
