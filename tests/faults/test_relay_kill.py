"""The relay process killed with SIGKILL mid-batch: events may go out twice (same
message_id), never not at all."""

from __future__ import annotations

import signal

import asyncpg
import pytest

from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until

BACKLOG = 600


async def test_relay_killed_mid_batch_loses_no_event(
    launch: Launch,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The service takes orders without a relay of its own; they pile up in the outbox.
    service = await launch("serve", "--workers", "1", RELAY_ENABLED="false")
    port = await service.serving_port()
    load = Load(f"http://127.0.0.1:{port}", clients=8)
    load.start()
    assert await wait_until(lambda: sum(a.status == 200 for a in load.attempts) >= BACKLOG, 60)

    relay = await launch("relay", RELAY_BATCH_SIZE="500")
    # Killed as soon as the first events of its first batch arrive.
    assert await wait_until(lambda: len(consumer.deliveries) >= 1, 20, step=0.001)
    relay.send_signal(signal.SIGKILL)
    assert await relay.wait(10) == -signal.SIGKILL
    delivered_before_kill = len(consumer.deliveries)
    await load.stop()
    unsent = await db.fetchval(
        "SELECT count(*) FROM outbox o JOIN orders r ON r.id = o.aggregate_id "
        "WHERE o.published_at IS NULL AND r.request_token = ANY($1::text[])",
        [a.token for a in load.attempts],
    )

    second = await launch("relay")
    await second.wait_for_event(lambda e: e.get("event") == "relay_started")
    books = await check_books("relay killed mid-batch", db, load.requests, consumer)
    assert await second.stop() == 0, second.output()
    assert await service.stop() == 0, service.output()

    books.notes["delivered before the kill"] = delivered_before_kill
    books.notes["unsent after the kill"] = unsent
    report(capsys, books.line())
    books.assert_clean()
    assert unsent > 0  # the kill did land mid-way
