"""The outbox relay against the real PostgreSQL and RabbitMQ: what it sends, when it
marks rows sent, several relays at once, a crash between publish and commit, an
unroutable event, housekeeping and the backlog gauges."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import aio_pika
import aiormq
import asyncpg
import pytest
from prometheus_client import REGISTRY

from events.broker import Broker
from events.envelope import CONTENT_TYPE, EVENT_TYPE, ROUTING_KEY
from events.outbox_wakeup import OutboxWakeup
from events.relay import COALESCE_AFTER, LISTEN_CHANNEL, OutboxRelay, Outcome
from service.config import Config
from service.db import create_pool
from service.sql import queries
from tests.events.conftest import EventConsumer, PlaceOrders, StartRelay
from tests.support.tcp_proxy import TcpProxy

# A merchant's metaData with what JSON can carry that is easy to get wrong on the way.
METADATA: dict[str, Any] = {
    "plain": "value",
    "unicode": "Grüße, 世界 — 🚀 עברית é",
    "escapes": 'quote " backslash \\ newline \n tab \t slash /',
    "empty": "",
    "int": 42,
    "negative": -7,
    "zero": 0,
    "float": 1.5,
    "tiny": 1e-7,
    "beyondDouble": 9007199254740993,
    "yes": True,
    "no": False,
    "nothing": None,
}
NESTED_METADATA: dict[str, Any] = {
    "nested": {"list": [1, "два", {"deep": None, "ok": True}], "empty": {}, "pi": 3.14159},
    "emoji": "👩‍👩‍👧",
}


UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/nowhere"


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def outbox_row(db: asyncpg.Connection, event_id: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT published_at, attempts, last_error,"
        " CASE WHEN isfinite(next_attempt_at)"
        " THEN EXTRACT(EPOCH FROM next_attempt_at - now())::float8 END AS due_in"
        " FROM outbox WHERE event_id = $1::uuid",
        event_id,
    )
    assert row is not None
    return row


async def route_nowhere(db: asyncpg.Connection, event_id: str) -> None:
    """Gives the event a routing key no queue is bound for: the broker returns it."""
    await db.execute(
        "UPDATE outbox SET routing_key = 'order.nobody.listens' WHERE event_id = $1::uuid",
        event_id,
    )


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_event_is_delivered_exactly_as_stored_with_ce_headers(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    await start_relay()
    [order] = await placer(metadata=METADATA)
    [got] = await consumer.wait_for([order.event_id])

    assert got.envelope == order.payload
    assert got.envelope["data"]["metaData"] == METADATA
    assert got.envelope["subject"] == order.order_id
    assert got.message_id == order.event_id
    assert got.content_type == CONTENT_TYPE
    assert got.delivery_mode == 2
    assert got.exchange == config.events_exchange
    assert got.routing_key == ROUTING_KEY
    assert got.headers == {
        "ce-specversion": "1.0",
        "ce-id": order.event_id,
        "ce-type": EVENT_TYPE,
        "ce-source": f"{config.event_source}/initials_url",
        "ce-subject": order.order_id,
        "ce-time": order.payload["time"],
        "ce-dataschemaversion": "1.0",
    }
    created_at = await db.fetchval(
        "SELECT created_at FROM outbox WHERE event_id = $1::uuid", order.event_id
    )
    assert got.timestamp is not None
    assert got.timestamp.timestamp() == int(created_at.timestamp())
    # The row is marked once the confirm is in, which may be just after the delivery.
    await wait_until(lambda: _published(db, order.event_id))
    row = await outbox_row(db, order.event_id)
    assert row["attempts"] == 1
    assert row["last_error"] is None


async def test_an_event_the_broker_refuses_is_deferred_alone(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    # A queue bound for its key is full and refuses more (x-overflow reject-publish): the
    # broker nacks the message, which other queues may hold all the same. Sent again at
    # once, round after round, it reached those queues as often as the relay tried.
    connection = await aio_pika.connect(config.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            config.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        full = await channel.declare_queue(
            f"test_full_{uuid.uuid4().hex}",
            exclusive=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(exchange, "order.full")
        [refused] = await placer()
        await db.execute(
            "UPDATE outbox SET routing_key = 'order.full' WHERE event_id = $1::uuid",
            refused.event_id,
        )
        relay = await start_relay(run=False, defer_initial=30.0)
        result = await relay.publish_batch()
    finally:
        await connection.close()
    assert result.refused >= 1
    row = await outbox_row(db, refused.event_id)
    assert row["published_at"] is None
    assert row["attempts"] == 1
    assert row["last_error"].startswith("refused by the broker")
    assert 25 < row["due_in"] <= 30
    # Not sent again before it is due: it holds nothing back either.
    await start_relay()
    behind = await placer(2)
    await consumer.wait_for([order.event_id for order in behind])
    assert (await outbox_row(db, refused.event_id))["attempts"] == 1
    await db.execute("DELETE FROM outbox WHERE event_id = $1::uuid", refused.event_id)


async def _published(db: asyncpg.Connection, event_id: str) -> bool:
    return (await outbox_row(db, event_id))["published_at"] is not None


async def test_nested_metadata_survives_unchanged(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay
) -> None:
    await start_relay()
    [order] = await placer(metadata=NESTED_METADATA)
    [got] = await consumer.wait_for([order.event_id])
    assert got.envelope["data"]["metaData"] == NESTED_METADATA
    assert got.envelope == order.payload


async def test_a_process_without_a_relay_wakes_the_relays_long_before_their_poll(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    pool: asyncpg.Pool,
    config: Config,
) -> None:
    relay = await start_relay(relay_config=replace(config, outbox_poll_interval=60))
    async with asyncio.timeout(10):
        # LISTEN is on and its catch-up round done: only a NOTIFY wakes the relay now.
        await relay.listening.wait()
        await relay.idle.wait()
    wakeup = OutboxWakeup(pool, relay=None)
    async with wakeup.running():
        orders = await placer(3)
        for _ in orders:
            wakeup.order_committed()
        received = await consumer.wait_for([order.event_id for order in orders], timeout=5)
    assert max(r.received_at for r in received) - orders[-1].committed_at < 2.0


async def test_the_relay_of_the_same_process_is_woken_directly(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    pool: asyncpg.Pool,
    config: Config,
) -> None:
    # No LISTEN connection (its database does not answer) and no poll within the test:
    # once its first round is done, only wake() can set the relay going.
    deaf = replace(config, outbox_poll_interval=60, database_url=UNREACHABLE_DATABASE)
    relay = await start_relay(relay_config=deaf)
    async with asyncio.timeout(10):
        await relay.idle.wait()
    wakeup = OutboxWakeup(pool, relay)
    notified = asyncio.Event()
    listener = await asyncpg.connect(config.database_url)
    await listener.add_listener(LISTEN_CHANNEL, lambda *_: notified.set())
    try:
        async with wakeup.running():
            [order] = await placer()
            wakeup.order_committed()
            [got] = await consumer.wait_for([order.event_id], timeout=5)
        await listener.execute(queries.ping)  # any notification sent would be in by now
    finally:
        await listener.close()
    assert got.received_at - order.committed_at < 2.0
    assert not notified.is_set()


async def relay_woken_by_hand(
    start_relay: StartRelay, config: Config, coalesce_ms: int
) -> OutboxRelay:
    """A running relay, idle, that starts a round only when wake() is called (no LISTEN,
    a poll a minute), with a coalescing pause of `coalesce_ms`."""
    relay = await start_relay(
        relay_config=replace(
            config,
            relay_coalesce_ms=coalesce_ms,
            outbox_poll_interval=60,
            database_url=UNREACHABLE_DATABASE,  # no LISTEN: only wake() sets it going
        )
    )
    async with asyncio.timeout(10):
        await relay.idle.wait()
    return relay


async def round_of(
    relay: OutboxRelay, placer: PlaceOrders, consumer: EventConsumer, events: int
) -> None:
    """One round of the relay that publishes `events` events (0: a round that finds none)."""
    orders = await placer(events) if events else []
    relay.wake()
    await consumer.wait_for([o.event_id for o in orders], timeout=5)
    async with asyncio.timeout(10):
        await relay.idle.wait()


async def seconds_to_publish_one(
    relay: OutboxRelay, placer: PlaceOrders, consumer: EventConsumer
) -> float:
    [order] = await placer()
    relay.wake()
    [got] = await consumer.wait_for([order.event_id], timeout=5)
    return got.received_at - order.committed_at


async def test_at_a_light_load_an_event_does_not_wait_for_the_coalescing_pause(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay, config: Config
) -> None:
    relay = await relay_woken_by_hand(start_relay, config, coalesce_ms=1000)
    await round_of(relay, placer, consumer, 0)  # whatever the first round found: not busy
    assert await seconds_to_publish_one(relay, placer, consumer) < 0.5


async def test_after_a_round_of_a_few_events_the_next_one_does_not_wait_for_the_pause(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay, config: Config
) -> None:
    # A few hundred orders a second give rounds of a few events: not behind.
    relay = await relay_woken_by_hand(start_relay, config, coalesce_ms=1000)
    await round_of(relay, placer, consumer, COALESCE_AFTER - 1)
    assert await seconds_to_publish_one(relay, placer, consumer) < 0.5


async def test_after_an_empty_round_the_next_event_does_not_wait_for_the_pause(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay, config: Config
) -> None:
    # A round of many, then a wake-up that finds nothing (a late NOTIFY, say): caught up.
    relay = await relay_woken_by_hand(start_relay, config, coalesce_ms=1000)
    await round_of(relay, placer, consumer, COALESCE_AFTER)
    await round_of(relay, placer, consumer, 0)
    assert await seconds_to_publish_one(relay, placer, consumer) < 0.5


async def test_after_a_round_of_many_events_the_next_one_waits_for_the_pause(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay, config: Config
) -> None:
    relay = await relay_woken_by_hand(start_relay, config, coalesce_ms=700)
    await round_of(relay, placer, consumer, COALESCE_AFTER)
    assert await seconds_to_publish_one(relay, placer, consumer) >= 0.7


async def test_a_backlog_goes_out_oldest_first_in_several_batches(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay, config: Config
) -> None:
    orders = await placer(120)
    await start_relay(relay_config=replace(config, relay_batch_size=25))
    received = await consumer.wait_for([o.event_id for o in orders])
    assert [r.message_id for r in received] == [o.event_id for o in orders]


async def test_two_relays_publish_every_event_once(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    small_batches = replace(config, relay_batch_size=20)
    orders = await placer(600)
    relays = await asyncio.gather(
        start_relay(relay_config=small_batches), start_relay(relay_config=small_batches)
    )
    more = await placer(200)  # while both are draining
    event_ids = [o.event_id for o in orders + more]
    await consumer.wait_for(event_ids, timeout=30)
    # The consumer can have an event before the relay that sent it has marked it sent (that
    # takes the broker's confirm and the relay's commit): a relay is idle only between batches.
    async with asyncio.timeout(10):
        for relay in relays:
            await relay.idle.wait()

    copies = Counter(r.message_id for r in consumer.of(event_ids))
    assert set(copies) == set(event_ids)
    assert max(copies.values()) == 1, [e for e, n in copies.items() if n > 1][:5]
    unsent = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
        event_ids,
    )
    assert unsent == 0


class CrashBeforeCommit(OutboxRelay):
    """Dies after the broker confirmed the batch, before the rows are marked sent (the
    transaction rolls back, as it does when the process is killed there)."""

    async def _record_outcomes(
        self, conn: asyncpg.Connection, rows: Any, outcomes: list[Outcome]
    ) -> None:
        assert all(o.sent for o in outcomes)
        raise RuntimeError("relay crashed before marking the batch sent")


async def test_crash_after_publish_sends_the_event_again_with_the_same_message_id(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
) -> None:
    [order] = await placer()
    crashing = await start_relay(run=False, relay_class=CrashBeforeCommit)
    try:
        await crashing.publish_batch()
    except RuntimeError:
        pass
    else:  # pragma: no cover - the subclass always raises
        raise AssertionError("the crash did not happen")
    await consumer.wait_for([order.event_id])
    assert (await outbox_row(db, order.event_id))["published_at"] is None

    healthy = await start_relay(run=False)
    result = await healthy.publish_batch()
    assert result.published >= 1
    await wait_until(lambda: _arrived_twice(consumer, order.event_id))
    first, second = consumer.of([order.event_id])
    assert first.message_id == second.message_id == order.event_id
    assert first.body == second.body
    assert (await outbox_row(db, order.event_id))["published_at"] is not None


async def _arrived_twice(consumer: EventConsumer, event_id: str) -> bool:
    return len(consumer.of([event_id])) >= 2


async def test_unroutable_event_is_deferred_alone_and_kept_until_a_queue_is_bound(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    # Other tests' unsent rows may share the outbox: only this test's rows are asserted.
    [stuck] = await placer()
    # Nobody binds this routing key: the broker returns the mandatory message.
    await route_nowhere(db, stuck.event_id)
    before = counter("order_service_events_unroutable_total")
    relay = await start_relay(run=False, defer_initial=30.0)
    await relay.publish_batch()
    assert counter("order_service_events_unroutable_total") >= before + 1
    row = await outbox_row(db, stuck.event_id)
    assert row["published_at"] is None  # not dropped: it goes again
    assert row["attempts"] == 1
    assert row["last_error"].startswith("unroutable")
    assert 25 < row["due_in"] <= 30

    # It holds nothing back: one event per batch, the events behind it go out at once.
    one_per_batch = replace(config, relay_batch_size=1)
    await start_relay(relay_config=one_per_batch, defer_initial=30.0)
    behind = await placer(3)
    await consumer.wait_for([order.event_id for order in behind])
    assert (await outbox_row(db, stuck.event_id))["attempts"] == 1

    # Once due, it goes to the first consumer to bind its key, though committed before it.
    late = EventConsumer()
    await late.start(config.amqp_url, config.events_exchange, "order.nobody.listens")
    try:
        await db.execute(
            "UPDATE outbox SET next_attempt_at = now() WHERE event_id = $1::uuid",
            stuck.event_id,
        )
        await late.wait_for([stuck.event_id])
        assert [r.message_id for r in late.of([stuck.event_id])] == [stuck.event_id]
    finally:
        await late.close()
    await wait_until(lambda: _published(db, stuck.event_id))
    row = await outbox_row(db, stuck.event_id)
    assert row["last_error"] is None
    assert row["attempts"] == 2


async def test_deferral_doubles_with_each_unroutable_attempt_up_to_its_cap(
    placer: PlaceOrders, start_relay: StartRelay, db: asyncpg.Connection
) -> None:
    [stuck] = await placer()
    await route_nowhere(db, stuck.event_id)
    relay = await start_relay(run=False, defer_initial=10.0, defer_max=25.0)
    due_in = []
    try:
        for _ in range(3):
            await relay.publish_batch()
            due_in.append((await outbox_row(db, stuck.event_id))["due_in"])
            # Due again now, so the next batch claims it.
            await db.execute(
                "UPDATE outbox SET next_attempt_at = now() WHERE event_id = $1::uuid",
                stuck.event_id,
            )
    finally:
        # Unroutable for good: no later test's relay should keep trying it.
        await db.execute("DELETE FROM outbox WHERE event_id = $1::uuid", stuck.event_id)
    # Deferred from the claim's transaction start, so a slow confirm shortens what is left.
    for seconds, deferred in zip(due_in, [10, 20, 25], strict=True):
        assert deferred - 5 < seconds <= deferred


async def test_nothing_is_claimed_or_counted_while_the_broker_is_unreachable(
    placer: PlaceOrders, start_relay: StartRelay, db: asyncpg.Connection
) -> None:
    [order] = await placer()
    relay = await start_relay(amqp_url="amqp://guest:guest@127.0.0.1:1/")
    await wait_until(lambda: _backlog_at_least(relay, 1))
    row = await outbox_row(db, order.event_id)
    assert row["published_at"] is None
    assert row["attempts"] == 0
    assert counter("order_service_outbox_backlog") >= 1


async def _backlog_at_least(relay: OutboxRelay, size: int) -> bool:
    return (await relay.refresh_backlog())[0] >= size


async def test_stop_returns_promptly_even_with_the_broker_down(
    start_relay: StartRelay, config: Config, pool: asyncpg.Pool
) -> None:
    broker = Broker("amqp://guest:guest@127.0.0.1:1/", max_backoff=0.5)
    broker.start()
    relay = OutboxRelay(config, pool, broker)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    relay.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2
    await broker.close()


async def test_housekeeping_deletes_old_published_rows(
    placer: PlaceOrders, start_relay: StartRelay, db: asyncpg.Connection, config: Config
) -> None:
    old_sent, recent_sent, old_unsent = await placer(3)
    await db.execute(
        "UPDATE outbox SET published_at = now() - interval '2 days',"
        " created_at = now() - interval '2 days' WHERE event_id = $1::uuid",
        old_sent.event_id,
    )
    await db.execute(
        "UPDATE outbox SET published_at = now() WHERE event_id = $1::uuid", recent_sent.event_id
    )
    await db.execute(
        "UPDATE outbox SET created_at = now() - interval '3 days' WHERE event_id = $1::uuid",
        old_unsent.event_id,
    )
    relay = await start_relay(
        run=False,
        relay_config=replace(config, outbox_retention_seconds=86400),
    )
    assert await relay.housekeeping() >= 1
    remaining = {
        str(r["event_id"])
        for r in await db.fetch(
            "SELECT event_id FROM outbox WHERE event_id = ANY($1::uuid[])",
            [old_sent.event_id, recent_sent.event_id, old_unsent.event_id],
        )
    }
    assert remaining == {recent_sent.event_id, old_unsent.event_id}


async def test_backlog_gauges_report_size_and_oldest_age(
    placer: PlaceOrders, start_relay: StartRelay, db: asyncpg.Connection
) -> None:
    [order] = await placer()
    await db.execute(
        "UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE event_id = $1::uuid",
        order.event_id,
    )
    relay = await start_relay(run=False)
    size, age = await relay.refresh_backlog()
    assert size >= 1
    assert age >= 90
    assert counter("order_service_outbox_backlog") == size
    assert counter("order_service_outbox_oldest_unsent_age_seconds") == age


async def test_an_invalid_envelope_fails_alone_and_stays_unsent(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
) -> None:
    broken, fine = await placer(2)
    await db.execute(
        "UPDATE outbox SET payload = payload - 'id' WHERE event_id = $1::uuid", broken.event_id
    )
    try:
        relay = await start_relay(run=False)
        result = await relay.publish_batch()
        assert result.invalid == 1
        await consumer.wait_for([fine.event_id])
        row = await outbox_row(db, broken.event_id)
        assert row["published_at"] is None
        assert row["attempts"] == 1
        assert "id" in row["last_error"]
    finally:  # later relays of this run must not meet it
        await db.execute("DELETE FROM outbox WHERE event_id = $1::uuid", broken.event_id)


class DrainFailsOnce(OutboxRelay):
    """Its first drain fails as a defect would: an exception no round expects."""

    drains = 0

    async def _drain(self) -> Any:
        self.drains += 1
        if self.drains == 1:
            raise RuntimeError("a defect in the drain")
        return await super()._drain()


async def test_a_relay_whose_run_fails_says_so_at_once_and_starts_again(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [order] = await placer()
    relay = await start_relay(relay_class=DrainFailsOnce)
    assert isinstance(relay, DrainFailsOnce)
    # Before, the relay's task ended there, and the event waited for a restart.
    await consumer.wait_for([order.event_id])
    assert relay.drains >= 2
    [crash] = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"relay_crashed"' in line
    ]
    assert "RuntimeError: a defect in the drain" in crash["exception"]


async def test_an_exchange_of_another_kind_is_named_as_the_operators_to_fix(
    start_relay: StartRelay,
    config: Config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # EVENTS_EXCHANGE naming RabbitMQ's own direct exchange: no retry can declare it as a
    # durable topic one. Before, only relay_batch_failed warnings said so, among others.
    relay = await start_relay(run=False, relay_config=replace(config, events_exchange="amq.direct"))
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await relay.publish_batch()
    [failed] = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"relay_exchange_declare_failed"' in line
    ]
    assert failed["level"] == "error"
    assert failed["exchange"] == "amq.direct"
    assert "PRECONDITION_FAILED" in failed["error"]


async def test_a_claim_whose_connection_is_lost_is_made_again_at_once_on_a_new_one(
    placer: PlaceOrders, consumer: EventConsumer, config: Config, db: asyncpg.Connection
) -> None:
    # A database restart ends the pooled connections, and asyncpg finds a dead one only
    # when it uses it: the relay's round failed, and its events waited for the backoff
    # (one per dead connection, doubling) before the next.
    [order] = await placer()
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = replace(config, database_url=proxy.url_for(config.database_url))
        pool = await create_pool(replace(proxied, db_pool_min=1, db_pool_max=2))
        broker = Broker(config.amqp_url, max_backoff=0.5, connect_timeout=2)
        broker.start()
        try:
            async with asyncio.timeout(10):
                await broker.wait_connected()
            relay = OutboxRelay(config, pool, broker)
            proxy.freeze()
            claiming = asyncio.create_task(relay.publish_batch())
            async with asyncio.timeout(10):
                while proxy.held < 1:  # its transaction's first statement, held back
                    await asyncio.sleep(0)
            await proxy.reset()
            result = await claiming
        finally:
            await broker.close()
            await pool.close()
    assert result.published >= 1
    await consumer.wait_for([order.event_id])
    assert (await outbox_row(db, order.event_id))["published_at"] is not None
