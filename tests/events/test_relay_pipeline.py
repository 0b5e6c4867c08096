"""The relay's pipeline: the next batch is claimed and sent while the last one waits for
its confirms, each keeps its own transaction, and a batch that fails or is abandoned
leaves its rows unsent, whatever the other batch in flight does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from events.relay import COALESCE_AFTER, OutboxRelay, Outcome
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

    async def first_batch_held_then_second_woken(self, placer: PlaceOrders) -> list[Any]:
        """Once idle: an order, a round held at its confirms, another order, and a wake-up
        for the next round. Returns the two orders."""
        async with asyncio.timeout(10):
            await self.idle.wait()
        [first] = await placer()
        self.wake()
        await self.wait_held(1)
        [second] = await placer()
        self.wake()
        return [first, second]


class SecondSendHangs(HeldConfirms):
    """Holds the first batch's confirms, and the second batch hangs while being sent (a
    write that never completes): it holds its claim and connection meanwhile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sends = 0
        self.second_sending = asyncio.Event()

    async def _publish_rows(self, channel: Any, rows: Sequence[asyncpg.Record]) -> Any:
        self.sends += 1
        if self.sends == 2:
            self.second_sending.set()
            await asyncio.Event().wait()
        return await super()._publish_rows(channel, rows)


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


async def assert_abandoned_and_released(
    relay: OutboxRelay, orders: Sequence[Any], db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    """The relay abandoned its batches at the stop: their orders' events were neither marked
    nor counted as an attempt, and no connection or transaction is left held."""
    assert relay.batch_abandoned
    for order in orders:
        row = await outbox_row(db, order.event_id)
        assert row["published_at"] is None
        assert row["attempts"] == 0
    assert pool.get_size() == pool.get_idle_size()
    assert await open_transactions(db) == 0


async def open_transactions(db: asyncpg.Connection) -> int:
    """Sessions of this database (but `db`'s) inside a transaction."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
    )
    return count


@pytest.fixture(autouse=True)
async def nothing_left_unsent(db: asyncpg.Connection) -> None:
    """Each test here starts a relay whose first round must find nothing due: one that
    claims an earlier test's event holds that batch (HeldConfirms, FirstMarkingFails) and
    never becomes idle. An event published with no queue bound is due again DEFER_INITIAL
    (0.1 s) later, so a relay that took longer to start than that on a loaded machine
    claimed it; the batch it abandoned at the stop left the event for the next test too."""
    await db.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")


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
    first, second = await relay.first_batch_held_then_second_woken(placer)
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
    pool: asyncpg.Pool,
    config: Config,
) -> None:
    relay = await start_relay(
        relay_config=woken_by_hand(config), relay_class=HeldConfirms, run=False
    )
    assert isinstance(relay, HeldConfirms)
    async with relay.running(shutdown_timeout=0.1):
        first, second = await relay.first_batch_held_then_second_woken(placer)
        await relay.wait_held(2)
        await consumer.wait_for([first.event_id, second.event_id], timeout=5)
    # The stop waited, then abandoned both batches: their transactions rolled back and
    # their connections went back to the pool.
    await assert_abandoned_and_released(relay, [first, second], db, pool)
    healthy = await start_relay(run=False)
    result = await healthy.publish_batch()
    assert result.published == 2


async def test_a_batch_cut_off_while_being_sent_releases_its_claim_and_connection(
    placer: PlaceOrders,
    consumer: EventConsumer,  # bound, so the healthy relay's events are not deferred
    start_relay: StartRelay,
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    config: Config,
) -> None:
    relay = await start_relay(
        relay_config=woken_by_hand(config), relay_class=SecondSendHangs, run=False
    )
    assert isinstance(relay, SecondSendHangs)
    async with relay.running(shutdown_timeout=0.1):
        first, second = await relay.first_batch_held_then_second_woken(placer)
        async with asyncio.timeout(10):
            await relay.second_sending.wait()
    await assert_abandoned_and_released(relay, [first, second], db, pool)
    healthy = await start_relay(run=False)
    result = await healthy.publish_batch()
    assert result.claimed == 2  # none is still locked
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


async def test_a_relay_behind_the_commits_lets_them_gather_while_its_confirms_come_in(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    config: Config,
) -> None:
    relay = await start_relay(relay_config=woken_by_hand(config), relay_class=HeldConfirms)
    assert isinstance(relay, HeldConfirms)
    async with asyncio.timeout(10):
        await relay.idle.wait()
    behind = await placer(COALESCE_AFTER)
    relay.wake()
    await relay.wait_held(1)
    [late] = await placer()
    relay.wake()
    # A relay keeping up would send it at once (the first test); this one waits.
    with pytest.raises(TimeoutError):
        await consumer.wait_for([late.event_id], timeout=0.5)
    relay.release.set()
    await consumer.wait_for([o.event_id for o in [*behind, late]], timeout=5)
