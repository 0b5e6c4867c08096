"""The outbox relay alone, in one process, on a fresh database and exchange:

- drain: a backlog of N events (default 10,000) published with publisher confirms, from
  the relay's start until the consumer holds every one of them;
- lag: events committed one at a time at a light, steady rate, each followed by the
  relay's wake() as an order committed in its process gives it; commit (time after the
  INSERT's commit returns) to the consumer's receipt.

    .venv/bin/python -m bench.relay_drain [--events 10000] [--lag-events 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aio_pika

from bench.database import create_bench_database, drop_database
from bench.stats import percentile
from events.broker import Broker
from events.envelope import order_created_event
from events.relay import OutboxRelay
from service.config import load_config
from service.db import create_connection, create_pool

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INSERT_EVENT = """
INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
VALUES ($1::uuid, $2, $3, $4, $5::jsonb)
"""
UNSENT = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
METADATA = {"campaign": "black-friday", "landing": "/prémium", "step": 3, "returning": True}


def event_row(number: int) -> tuple[Any, ...]:
    """An outbox row shaped like a real initials/url order's."""
    order_id = f"B{number:07d}"
    created_at = datetime.now(UTC)
    event = order_created_event(
        source="/order-service",
        family="initials_url",
        order_id=order_id,
        created_at=created_at,
        order={
            "id": order_id,
            "family": "initials_url",
            "status": "created",
            "merchant": {"id": 1, "code": "eyezy"},
            "items": [
                {
                    "position": 0,
                    "action": "purchase",
                    "productCode": "premium_1m",
                    "unitAmount": 2999,
                    "quantity": 1,
                    "amount": 2999,
                }
            ],
            "currency": "USD",
            "amounts": {"base": 2999, "discount": 0, "coupon": 300, "total": 2699},
            "autocharge": True,
            "request": {"buyerIp": "203.0.113.10", "source": "web", "id": "checkout"},
            "createdAt": created_at,
        },
        metadata=METADATA,
    )
    return (
        event["event_id"],
        event["event_type"],
        event["routing_key"],
        order_id,
        event["payload"],
    )


class Receipts:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.at.setdefault(message.message_id or "", time.time())
        self.arrived.set()

    async def wait_count(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.at) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def main(events: int, lag_events: int, rate: float) -> None:
    run = uuid.uuid4().hex[:10]
    db_name = f"order_service_relaybench_{run}"
    url = await create_bench_database(ADMIN_URL, db_name)
    config = replace(
        load_config({}),
        database_url=url,
        events_exchange=f"orders_relaybench_{run}",
        log_level="warning",
    )
    consumer = await aio_pika.connect(config.amqp_url)
    pool = await create_pool(config)
    conn = await create_connection(url)
    broker = Broker(config.amqp_url)
    broker.start()
    try:
        channel = await consumer.channel()
        exchange = await channel.declare_exchange(
            config.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Drain: the backlog is written first, then the relay starts. The events go to a
        # bound queue that nobody consumes during the drain, so a consumer in this process
        # does not take CPU from the relay; the queue's depth proves every one arrived.
        backlog = await channel.declare_queue(exclusive=True)
        await backlog.bind(exchange, "order.created")
        await conn.executemany(INSERT_EVENT, [event_row(n) for n in range(events)])
        relay = OutboxRelay(config, pool, broker)
        await broker.wait_connected()
        started = time.perf_counter()
        async with relay.running(shutdown_timeout=30):
            async with asyncio.timeout(300):
                # Polled sparingly: counting the backlog costs the database too.
                while await conn.fetchval(UNSENT):
                    await asyncio.sleep(0.05)
            marked = time.perf_counter() - started
            depth = (await channel.declare_queue(backlog.name, passive=True)).declaration_result
            print(
                f"drain: {events} events published with confirms and marked sent in"
                f" {marked:.2f} s ({events / marked:,.0f}/s), batch size"
                f" {config.relay_batch_size}; queue depth {depth.message_count}"
            )
            await backlog.delete(if_unused=False, if_empty=False)

            receipts = Receipts()
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, "order.created")
            await queue.consume(receipts.on_message, no_ack=True)

            # Lag at light load: one event per transaction, `rate` per second.
            committed: dict[str, float] = {}
            for n in range(lag_events):
                row = event_row(events + n)
                await conn.execute(INSERT_EVENT, *row)
                committed[row[0]] = time.time()
                relay.wake()
                await asyncio.sleep(1 / rate)
            await receipts.wait_count(lag_events, timeout=60)
        lags = sorted((receipts.at[e] - t) * 1000 for e, t in committed.items())
        print(
            f"lag at {rate:g} events/s ({lag_events} events): p50 {percentile(lags, 50):.1f} ms,"
            f" p99 {percentile(lags, 99):.1f} ms, max {lags[-1]:.1f} ms"
        )
    finally:
        await broker.close()
        await pool.close()
        await conn.close()
        channel = await consumer.channel()
        await channel.exchange_delete(config.events_exchange)
        await consumer.close()
        await drop_database(ADMIN_URL, db_name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--lag-events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.events, args.lag_events, args.rate))
