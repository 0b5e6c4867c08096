"""RabbitMQ taken away through a TCP proxy the test controls: orders keep being written,
nothing is published or marked while it is away, and when it returns every event
arrives, oldest first."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from urllib.parse import urlsplit

import asyncpg

from events.broker import Broker
from events.relay import OutboxRelay
from service.config import Config
from service.db import create_pool
from tests.events.conftest import EventConsumer, PlaceOrders, StartRelay
from tests.support.tcp_proxy import TcpProxy


async def test_events_written_while_the_broker_is_cut_arrive_after_restore(
    placer: PlaceOrders,
    consumer: EventConsumer,
    start_relay: StartRelay,
    db: asyncpg.Connection,
    config: Config,
) -> None:
    target = urlsplit(config.amqp_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5672) as proxy:
        relay = await start_relay(amqp_url=proxy.url_for(config.amqp_url))
        [before] = await placer()
        await consumer.wait_for([before.event_id])

        await proxy.cut()
        async with asyncio.timeout(10):
            while relay.broker.connected:
                await asyncio.sleep(0.02)
        during = await placer(150)
        during_ids = [o.event_id for o in during]
        await asyncio.sleep(0.5)  # the relay is awake (NOTIFY) but has nowhere to publish
        assert consumer.of(during_ids) == []
        unsent = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
            during_ids,
        )
        assert unsent == len(during)

        await proxy.restore()
        received = await consumer.wait_for(during_ids, timeout=30)

    copies = Counter(r.message_id for r in received)
    assert set(copies) == set(during_ids)
    assert max(copies.values()) == 1
    first_copies = list(dict.fromkeys(r.message_id for r in received))
    assert first_copies == during_ids  # the backlog went out oldest first


async def test_relay_recovers_when_its_database_connections_are_cut(
    placer: PlaceOrders, consumer: EventConsumer, config: Config
) -> None:
    """The relay's pool and LISTEN connection go through a proxy that is cut and restored;
    orders written meanwhile (straight to PostgreSQL) are published once it is back."""
    target = urlsplit(config.database_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = replace(
            config,
            database_url=proxy.url_for(config.database_url),
            db_acquire_timeout=1.0,
            outbox_poll_interval=0.5,
        )
        pool = await create_pool(proxied)
        broker = Broker(config.amqp_url, max_backoff=0.5)
        broker.start()
        relay = OutboxRelay(proxied, pool, broker, max_backoff=0.5)
        try:
            async with relay.running(shutdown_timeout=10):
                [before] = await placer()
                await consumer.wait_for([before.event_id])
                await proxy.cut()
                during = await placer(20)
                await asyncio.sleep(1.0)  # the relay fails and backs off meanwhile
                await proxy.restore()
                received = await consumer.wait_for([o.event_id for o in during], timeout=30)
        finally:
            await broker.close()
            await pool.close()
    assert {r.message_id for r in received} == {o.event_id for o in during}


async def test_a_relay_whose_broker_stops_answering_as_its_channel_opens_carries_on_after(
    start_relay: StartRelay, config: Config
) -> None:
    """RabbitMQ stops answering right after the handshake, before the relay's channel is
    open. aiormq gives the connection up after three missed heartbeats and cancels the
    calls in flight on it: the relay takes that for the broker's failure, not for a stop,
    and publishes again once the Broker has reconnected."""
    target = urlsplit(config.amqp_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5672) as proxy:
        # A 1 s heartbeat: the frozen connection is given up after (1 + 1) x 3 = 6 s, well
        # within the relay's own deadline for opening its channel (confirm_timeout).
        url = proxy.url_for(config.amqp_url).rstrip("/") + "/?heartbeat=1"
        relay = await start_relay(amqp_url=url, run=False, confirm_timeout=30)
        proxy.freeze()
        async with relay.running(shutdown_timeout=5):
            async with asyncio.timeout(20):
                while relay.broker.connected:
                    await asyncio.sleep(0.05)
            proxy.thaw()
            async with asyncio.timeout(15):
                await relay.idle.wait()


async def test_a_connection_on_which_the_channel_does_not_open_is_given_up_for_a_new_one(
    start_relay: StartRelay,
) -> None:
    """RabbitMQ keeps the connection alive (heartbeats) but never answers the relay's
    Channel.Open on it: the relay gives that connection up after its deadline and
    publishes on a new one, instead of opening channel after channel on it forever."""
    relay = await start_relay(run=False, confirm_timeout=1)
    wedged = relay.broker.connection
    assert wedged is not None
    wedged.channel = lambda *_, **__: asyncio.Event().wait()  # type: ignore[method-assign]
    async with relay.running(shutdown_timeout=5):
        async with asyncio.timeout(10):
            await relay.idle.wait()
        assert relay.broker.connection is not wedged
