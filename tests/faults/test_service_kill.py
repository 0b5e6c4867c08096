"""SIGKILL to the whole service mid-load (its HTTP server and the relay inside it), then a
new service on the same port.

Nothing gets to clean up: requests in flight are cut off, a claimed Idempotency-Key is not
released, events committed but not yet published stay in the outbox. The clients retry
with their Idempotency-Key. The books hold per logical request: a final 200 has exactly its
order and its event (published by the new service's relay); a request cut off before its
order committed left nothing, and its key answers 409 until the killed process's claim
goes stale; then the retry goes through. The service runs with short database timeouts so
its claims go stale in seconds.
"""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest

from service.config import Config
from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until

# A claim goes stale after 0.5 + 2 + 2 = 4.5 s instead of the default 10 s.
SHORT_TIMEOUTS = {"DB_ACQUIRE_TIMEOUT": "0.5", "DB_STATEMENT_TIMEOUT_MS": "1000"}


async def test_service_killed_mid_load_loses_nothing(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stale_seconds = replace(
        config, db_acquire_timeout=0.5, db_statement_timeout_ms=1000
    ).idempotency_claim_stale_seconds
    service = await launch("serve", "--workers", "1", **SHORT_TIMEOUTS)
    port = await service.serving_port()
    load = Load(f"http://127.0.0.1:{port}", clients=8, retry=True)
    load.start()
    assert await wait_until(lambda: sum(a.status == 200 for a in load.attempts) >= 100, 20)

    await service.kill()
    assert service.returncode == -9

    def answered_200() -> int:
        return sum(a.status == 200 for a in load.attempts)

    ok_at_kill = answered_200()

    restarted = await launch("serve", "--workers", "1", PORT=str(port), **SHORT_TIMEOUTS)
    assert await restarted.serving_port() == port
    assert await wait_until(lambda: answered_200() - ok_at_kill >= 50, 20)
    # A key the killed process had claimed answers 409 until its claim is stale.
    await load.stop(retry_deadline=stale_seconds + 2)

    books = await check_books("SIGKILL to the service", db, load.requests, consumer)
    assert await restarted.stop() == 0, restarted.output()
    finals = [r.final for r in load.requests]
    books.notes["attempts without an answer"] = sum(a.status is None for a in load.attempts)
    books.notes["answered by a stored response"] = sum(f.replayed for f in finals)
    books.notes["409 idempotency_key_in_use before a 200"] = sum(
        any(a.code == "idempotency_key_in_use" for a in r.attempts) for r in load.requests
    )
    report(capsys, books.line())
    books.assert_clean()
    # The new service took orders after the kill.
    assert answered_200() - ok_at_kill >= 50
    # Every request ends with its order, a key the killed process held included.
    assert [f.status for f in finals] == [200] * len(finals)
