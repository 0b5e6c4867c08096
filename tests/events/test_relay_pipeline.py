"""The relay's pipeline: the next batch is claimed and sent while the last one waits for
its confirms, each keeps its own transaction, and a batch that fails or is abandoned
leaves its rows unsent, whatever the other batch in flight does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from events.relay import OutboxRelay, Outcome
from service.config import Config
from tests.events.conftest import EventConsumer, PlaceOrders, StartRelay
from tests.events.test_relay import UNREACHABLE_DATABASE, _arrived_twice, outbox_row, wait_until


class HeldConfirms(OutboxRelay):
    """Holds every batch's wait for its confirms until `release` is set; `held` counts the
    batches waiting there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.held = 0
        self.held_changed = asyncio.Event()

    async def _outcomes(
        self, rows: Sequence[asyncpg.Record], pending: list[asyncio.Future[Any]]
    ) -> list[Outcome]:
        self.held += 1
        self.held_changed.set()
        try:
            await self.release.wait()
        finally:
            self.held -= 1
        return await super()._outcomes(rows, pending)

    async def wait_held(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.held < count:
                self.held_changed.clear()
                await self.held_changed.wait()


class FirstMarkingFails(OutboxRelay):
    """The first batch's marking fails (the database's error, say) once the next batch is
    out: its transaction rolls back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.first_sent = asyncio.Event()
        self.second_sent = asyncio.Event()
        self.marked = 0

    async def _publish_rows(self, channel: Any, rows: Sequence[asyncpg.Record]) -> Any:
        confirms = await super()._publish_rows(channel, rows)
        self.sent += 1
        (self.first_sent if self.sent == 1 else self.second_sent).set()
        return confirms

    async def _record_outcomes(
        self, conn: asyncpg.Connection, rows: Any, outcomes: list[Outcome]
    ) -> None:
        self.marked += 1
        if self.marked == 1:
            await self.second_sent.wait()
            raise asyncpg.PostgresConnectionError("the database went away while marking")
        await super()._record_outcomes(conn, rows, outcomes)


def woken_by_hand(config: Config) -> Config:
    """No LISTEN (its database does not answer) and no poll within a test: only wake()
    starts a round, and no coalescing pause."""
    return replace(
        config,
        outbox_poll_interval=60,
        database_url=UNREACHABLE_DATABASE,
        relay_coalesce_ms=0,
    )


async def test_the_next_batch_goes_out_while_the_last_one_waits_for_its_confirms(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    relay = await start_relay(relay_config=woken_by_hand(config), relay_class=HeldConfirms)
    assert isinstance(relay, HeldConfirms)
    async with asyncio.timeout(10):
        await relay.idle.wait()
    [first] = await placer()
    relay.wake()
    await relay.wait_held(1)
    [second] = await placer()
    relay.wake()
    # The second event reaches the consumer while the first batch still waits.
    await consumer.wait_for([first.event_id, second.event_id], timeout=5)
    await relay.wait_held(2)
    for order in (first, second):
        assert (await outbox_row(db, order.event_id))["published_at"] is None
    relay.release.set()
    async with asyncio.timeout(10):
        await relay.idle.wait()
    for order in (first, second):
        row = await outbox_row(db, order.event_id)
        assert row["published_at"] is not None
        assert row["attempts"] == 1
    assert [r.message_id for r in consumer.received] == [first.event_id, second.event_id]


async def test_two_batches_cut_off_at_the_stop_both_stay_unsent(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    relay = await start_relay(
        relay_config=woken_by_hand(config), relay_class=HeldConfirms, run=False
    )
    assert isinstance(relay, HeldConfirms)
    async with relay.running(shutdown_timeout=0.1):
        async with asyncio.timeout(10):
            await relay.idle.wait()
        [first] = await placer()
        relay.wake()
        await relay.wait_held(1)
        [second] = await placer()
        relay.wake()
        await relay.wait_held(2)
        await consumer.wait_for([first.event_id, second.event_id], timeout=5)
    # The stop waited, then abandoned both batches: their transactions rolled back.
    assert relay.batch_abandoned
    for order in (first, second):
        row = await outbox_row(db, order.event_id)
        assert row["published_at"] is None
        assert row["attempts"] == 0
    healthy = await start_relay(run=False)
    result = await healthy.publish_batch()
    assert result.published == 2


async def test_a_batch_whose_marking_fails_goes_out_again_and_the_next_is_kept(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    relay = await start_relay(relay_config=woken_by_hand(config), relay_class=FirstMarkingFails)
    assert isinstance(relay, FirstMarkingFails)
    async with asyncio.timeout(10):
        await relay.idle.wait()
    [first] = await placer()
    relay.wake()
    async with asyncio.timeout(10):
        await relay.first_sent.wait()
    [second] = await placer()
    relay.wake()
    # The first batch's marking fails once the second is out; the relay backs off, then
    # sends the first event again, with the same message id.
    await wait_until(lambda: _arrived_twice(consumer, first.event_id))
    async with asyncio.timeout(10):
        await relay.idle.wait()
    for order in (first, second):
        assert (await outbox_row(db, order.event_id))["published_at"] is not None
    assert len(consumer.of([second.event_id])) == 1
    assert relay.sent == 3
