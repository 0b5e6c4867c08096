"""SIGKILL to the whole service mid-load (its HTTP server and the relay inside it), then a
new service on the same port.

Nothing gets to clean up: requests in flight are cut off, a claimed Idempotency-Key is not
released, events committed but not yet published stay in the outbox. The clients retry
with their Idempotency-Key. The books hold per logical request: a final 200 has exactly its
order and its event (published by the new service's relay); a request cut off before its
order committed left nothing, and its key stays taken (409) until the claim goes stale.
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until


async def test_service_killed_mid_load_loses_nothing(
    launch: Launch,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    load = Load(f"http://127.0.0.1:{port}", clients=8, retry=True)
    load.start()
    assert await wait_until(lambda: sum(a.status == 200 for a in load.attempts) >= 100, 20)

    await service.kill()
    assert service.returncode == -9

    def answered_200() -> int:
        return sum(a.status == 200 for a in load.attempts)

    ok_at_kill = answered_200()

    restarted = await launch("serve", "--workers", "1", PORT=str(port))
    assert await restarted.serving_port() == port
    assert await wait_until(lambda: answered_200() - ok_at_kill >= 50, 20)
    # Retries still answered 409 (a key claimed by the killed process) stop here.
    await load.stop(retry_deadline=1.0)

    books = await check_books("SIGKILL to the service", db, load.requests, consumer)
    assert await restarted.stop() == 0, restarted.output()
    finals = [r.final for r in load.requests]
    books.notes["attempts without an answer"] = sum(a.status is None for a in load.attempts)
    books.notes["answered by a stored response"] = sum(f.replayed for f in finals)
    books.notes["key left claimed"] = sum(f.code == "idempotency_key_in_use" for f in finals)
    report(capsys, books.line())
    books.assert_clean()
    # The new service took orders after the kill.
    assert answered_200() - ok_at_kill >= 50
    # A request ends with its order, or (only when the kill took its claimed key with it)
    # with the key still in use; never with any other answer.
    assert all(f.status == 200 or f.code == "idempotency_key_in_use" for f in finals)
