"""Fixtures of the event tests: a consumer bound to this run's exchange, orders written
straight through place_order, and relays over the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aio_pika
import asyncpg
import orjson
import pytest

from events.broker import Broker
from events.envelope import order_created_event
from events.order_data import OrderAmounts, OrderItem, RequestOrigin, order_event_data
from events.relay import OutboxRelay
from service.config import Config
from service.db import create_pool
from service.domain.identifiers import new_order_id
from service.order_store import PreparedOrder, order_item_row, order_row
from service.sql import queries

FAMILY: Final = "initials_url"
PRODUCT_CODE = "basic_1m"
PRODUCT_NAME = "Basic, monthly"
UNIT_AMOUNT = 999


@dataclass(frozen=True)
class MerchantRef:
    id: int
    code: str


@dataclass(frozen=True)
class Received:
    """One message as the test consumer got it."""

    body: bytes
    envelope: dict[str, Any]
    message_id: str
    headers: dict[str, Any]
    content_type: str | None
    delivery_mode: int | None
    exchange: str
    routing_key: str
    timestamp: datetime | None  # the AMQP property
    received_at: float  # time.time()


class EventConsumer:
    """An exclusive queue of this test bound to the run's exchange; keeps every message."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._arrived = asyncio.Event()
        self._connection: Any = None

    async def start(self, amqp_url: str, exchange_name: str, binding: str) -> None:
        self._connection = await aio_pika.connect(amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"test_events_{uuid.uuid4().hex}", exclusive=True, auto_delete=True
        )
        await queue.bind(exchange, binding)
        await queue.consume(self._on_message, no_ack=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.received.append(
            Received(
                body=message.body,
                envelope=orjson.loads(message.body),
                message_id=message.message_id or "",
                headers=dict(message.headers),
                content_type=message.content_type,
                delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
                exchange=message.exchange or "",
                routing_key=message.routing_key or "",
                timestamp=message.timestamp,
                received_at=time.time(),
            )
        )
        self._arrived.set()

    def of(self, event_ids: Collection[str]) -> list[Received]:
        wanted = set(event_ids)
        return [r for r in self.received if r.message_id in wanted]

    async def wait_for(self, event_ids: Collection[str], timeout: float = 20.0) -> list[Received]:
        """Waits until every one of `event_ids` arrived at least once; returns what arrived
        for them, in arrival order."""
        wanted = set(event_ids)
        async with asyncio.timeout(timeout):
            while not wanted <= {r.message_id for r in self.received}:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(wanted)

    async def wait_for_match(
        self, predicate: Callable[[Received], bool], timeout: float = 20.0
    ) -> Received:
        """The first message for which `predicate` holds, waiting for it if need be."""
        async with asyncio.timeout(timeout):
            while True:
                for received in self.received:
                    if predicate(received):
                        return received
                self._arrived.clear()
                await self._arrived.wait()


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    event_id: str
    payload: dict[str, Any]  # the envelope as the order transaction stored it
    committed_at: float  # time.time() right after the commit


PlaceOrders = Callable[..., Awaitable[list[PlacedOrder]]]


def normalized(value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, datetimes strings, ...)."""
    return orjson.loads(orjson.dumps(value))


async def prepared_order(
    conn: asyncpg.Connection, config: Config, *, metadata: dict[str, Any] | None = None
) -> PreparedOrder:
    """A real order of eyezy's (order row, item, outbox event), ready for place_order."""
    merchant_id: int = await conn.fetchval("SELECT id FROM merchants WHERE code = 'eyezy'")
    product_id: int = await conn.fetchval(
        "SELECT id FROM products WHERE merchant_id = $1 AND code = $2", merchant_id, PRODUCT_CODE
    )
    order_id = new_order_id()
    created_at = datetime.now(UTC)
    row = order_row(
        id=order_id,
        merchant_id=merchant_id,
        family=FAMILY,
        currency="USD",
        base_amount=UNIT_AMOUNT,
        total_amount=UNIT_AMOUNT,
        metadata=metadata,
        created_at=created_at.isoformat(),
    )
    item = order_item_row(
        order_id, 0, product_id=product_id, product_code=PRODUCT_CODE, unit_amount=UNIT_AMOUNT
    )
    event = order_created_event(
        source=config.event_source,
        family=FAMILY,
        order_id=order_id,
        created_at=created_at,
        order=order_event_data(
            order_id=order_id,
            family=FAMILY,
            merchant=MerchantRef(merchant_id, "eyezy"),
            currency="USD",
            amounts=OrderAmounts.undiscounted(UNIT_AMOUNT),
            items=[OrderItem(0, "purchase", PRODUCT_CODE, PRODUCT_NAME, UNIT_AMOUNT)],
            request=RequestOrigin("203.0.113.10", "web", "checkout"),
            created_at=created_at,
            autocharge=True,
            autocharge_explicit=False,
        ),
        metadata=metadata,
    )
    return PreparedOrder(row, [item], event, 200, {"data": {"id": order_id}})


async def place_orders(
    conn: asyncpg.Connection,
    config: Config,
    count: int = 1,
    *,
    metadata: dict[str, Any] | None = None,
) -> list[PlacedOrder]:
    """Writes `count` real orders (order, item, outbox row) through place_order, one
    transaction each, as the endpoints do."""
    placed: list[PlacedOrder] = []
    for _ in range(count):
        order = await prepared_order(conn, config, metadata=metadata)
        await conn.fetchval(
            queries.place_order, order.row, order.items, order.event, None, None, 200, None, None
        )
        placed.append(
            PlacedOrder(
                order.row["id"],
                order.event["event_id"],
                normalized(order.event["payload"]),
                time.time(),
            )
        )
    return placed


@pytest.fixture
async def pool(config: Config) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(config)
    yield created
    await created.close()


@pytest.fixture
async def consumer(config: Config) -> AsyncIterator[EventConsumer]:
    """Receives every `order.created` event published to this run's exchange."""
    started = EventConsumer()
    await started.start(config.amqp_url, config.events_exchange, "order.created")
    yield started
    await started.close()


@pytest.fixture
async def placer(db: asyncpg.Connection, config: Config) -> PlaceOrders:
    async def _place(count: int = 1, **kwargs: Any) -> list[PlacedOrder]:
        return await place_orders(db, config, count, **kwargs)

    return _place


StartRelay = Callable[..., Awaitable[OutboxRelay]]


@pytest.fixture
async def start_relay(pool: asyncpg.Pool, config: Config) -> AsyncIterator[StartRelay]:
    """start_relay(amqp_url=..., relay_config=..., run=True, relay_class=OutboxRelay,
    **relay_options) -> relay (relay_options: OutboxRelay's keyword arguments).

    Each relay has a Broker (connection) of its own with short backoffs. With run=False
    the relay is only connected, for tests that drive publish_batch() themselves. All are
    stopped (after their batch) and closed at the end of the test.
    """
    async with AsyncExitStack() as stack:

        async def _start(
            *,
            amqp_url: str | None = None,
            relay_config: Config | None = None,
            run: bool = True,
            relay_class: type[OutboxRelay] = OutboxRelay,
            **relay_options: float,
        ) -> OutboxRelay:
            broker = Broker(amqp_url or config.amqp_url, max_backoff=0.5, connect_timeout=2)
            broker.start()
            stack.push_async_callback(broker.close)
            options = {"max_backoff": 0.5, **relay_options}
            relay = relay_class(relay_config or config, pool, broker, **options)
            if run:
                await stack.enter_async_context(relay.running(shutdown_timeout=10))
            else:
                async with asyncio.timeout(10):
                    await broker.wait_connected()
            return relay

        yield _start
