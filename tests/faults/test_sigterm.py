"""SIGTERM to the service mid-load: in-flight requests finish, nothing is half-written."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until


async def test_sigterm_mid_load_loses_nothing(
    launch: Launch,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    load = Load(f"http://127.0.0.1:{port}", clients=8)
    load.start()
    assert await wait_until(lambda: sum(a.status == 200 for a in load.attempts) >= 100, 20)

    service.send_signal(signal.SIGTERM)
    assert await service.wait(30) == 0, service.output()
    await asyncio.sleep(0.3)  # a moment of refused connections
    await load.stop()

    # Events still in the outbox go out with the next relay (here: `order-service relay`).
    relay = await launch("relay")
    await relay.wait_for_event(lambda e: e.get("event") == "relay_started")
    books = await check_books("SIGTERM to the service", db, load.requests, consumer)
    assert await relay.stop() == 0, relay.output()
    books.notes["no answer"] = sum(r.final.status is None for r in load.requests)
    report(capsys, books.line())
    books.assert_clean()
    assert books.ok >= 100
    assert any(e.get("event") == "shutdown_complete" for e in service.events)
