"""events.batch_publish against a real RabbitMQ: each message of one write gets its own
confirm (ack, or the returned message when unroutable), bodies larger than a frame arrive
whole, and the channel's delivery tags stay in step with the broker's for later publishes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import pytest
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from events.batch_publish import OutgoingMessage, publish_batch
from service.config import Config


def message(routing_key: str, body: bytes) -> OutgoingMessage:
    properties = spec.Basic.Properties(message_id=uuid.uuid4().hex, delivery_mode=2)
    return OutgoingMessage(routing_key, body, properties)


@pytest.fixture
async def channel_and_queue(
    config: Config,
) -> AsyncIterator[tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue]]:
    """A confirm-mode aiormq channel, and a queue bound to 'bound.#' on a fresh exchange."""
    exchange_name = f"{config.events_exchange}.batch.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(config.amqp_url)
    try:
        consumer_channel = await connection.channel()
        exchange = await consumer_channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queue = await consumer_channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "bound.#")
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=False)
        underlay: aiormq.Channel = await publisher.get_underlay_channel()
        yield underlay, exchange_name, queue
    finally:
        await connection.close()


async def collect(queue: aio_pika.abc.AbstractQueue, count: int) -> list[Any]:
    received: list[Any] = []
    async with asyncio.timeout(10), queue.iterator() as messages:
        async for incoming in messages:
            await incoming.ack()
            received.append(incoming)
            if len(received) == count:
                break
    return received


async def test_each_message_gets_its_own_confirm_and_arrives_in_order(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, queue = channel_and_queue
    big = bytes(range(256)) * 2048  # 512 KiB: several body frames at RabbitMQ's frame_max
    assert len(big) > channel.max_content_size
    batch = [
        message("bound.a", b"first"),
        message("nowhere.b", b"unroutable"),
        message("bound.c", big),
        message("bound.d", b""),
    ]

    confirms = await publish_batch(channel, exchange, batch)
    results = await asyncio.wait_for(asyncio.gather(*confirms), 10)

    assert isinstance(results[0], spec.Basic.Ack)
    assert isinstance(results[1], DeliveredMessage)
    assert results[1].body == b"unroutable"
    assert isinstance(results[2], spec.Basic.Ack)
    assert isinstance(results[3], spec.Basic.Ack)
    received = await collect(queue, 3)
    assert [m.body for m in received] == [b"first", big, b""]
    assert [m.message_id for m in received] == [
        batch[0].properties.message_id,
        batch[2].properties.message_id,
        batch[3].properties.message_id,
    ]
    assert not channel.message_id_delivery_tag  # nothing left behind for returns


async def test_later_publishes_are_confirmed_against_the_right_tags(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, queue = channel_and_queue
    first = await publish_batch(
        channel, exchange, [message("bound.x", b"%d" % i) for i in range(50)]
    )
    second = await publish_batch(channel, exchange, [message("bound.y", b"next")])
    single = await channel.basic_publish(
        b"single",
        exchange=exchange,
        routing_key="bound.z",
        properties=spec.Basic.Properties(message_id=uuid.uuid4().hex),
        mandatory=True,
    )

    results = await asyncio.wait_for(asyncio.gather(*first, *second), 10)
    assert all(isinstance(result, spec.Basic.Ack) for result in results)
    assert isinstance(single, spec.Basic.Ack)
    assert channel.delivery_tag == 52
    received = await collect(queue, 52)
    assert [m.body for m in received] == [b"%d" % i for i in range(50)] + [b"next", b"single"]


async def test_a_closed_channel_refuses_the_batch_and_sends_nothing(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, _ = channel_and_queue
    await channel.close()
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await publish_batch(channel, exchange, [message("bound.a", b"late")])


async def test_a_message_without_message_id_is_refused_before_anything_is_sent(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, _ = channel_and_queue
    anonymous = OutgoingMessage("bound.a", b"x", spec.Basic.Properties())
    with pytest.raises(ValueError, match="message_id"):
        await publish_batch(channel, exchange, [message("bound.a", b"ok"), anonymous])
    assert channel.delivery_tag == 0
    assert not channel.confirmations


async def test_a_message_amqp_cannot_carry_refuses_the_batch_and_keeps_the_tags(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, queue = channel_and_queue
    too_long = OutgoingMessage(
        "bound.a", b"x", spec.Basic.Properties(message_id=uuid.uuid4().hex, app_id="a" * 256)
    )
    with pytest.raises(TypeError, match="maximum length"):
        await publish_batch(channel, exchange, [message("bound.a", b"ok"), too_long])
    assert channel.delivery_tag == 0
    assert not channel.confirmations

    later = await publish_batch(channel, exchange, [message("bound.b", b"after")])
    assert isinstance(await asyncio.wait_for(later[0], 10), spec.Basic.Ack)
    assert [m.body for m in await collect(queue, 1)] == [b"after"]


async def test_closing_the_channel_rejects_the_confirms_still_open(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    # aiormq rejects the futures of a channel that closes (a lost connection) with the
    # reason; a batch's confirmations get it too, instead of waiting out their deadline.
    channel, exchange, _ = channel_and_queue
    confirms = await publish_batch(
        channel, exchange, [message("bound.a", b"%d" % i) for i in range(20)]
    )
    await channel._cancel_tasks(ConnectionResetError("connection lost"))
    outcomes = await asyncio.wait_for(asyncio.gather(*confirms, return_exceptions=True), 10)
    assert outcomes and all(isinstance(outcome, ConnectionResetError) for outcome in outcomes)


async def test_a_batch_leaves_nothing_in_the_channels_future_store(
    channel_and_queue: tuple[aiormq.Channel, str, aio_pika.abc.AbstractQueue],
) -> None:
    channel, exchange, queue = channel_and_queue
    store = channel._Base__future_store  # type: ignore[attr-defined]
    before = len(store.futures)
    confirms = await publish_batch(channel, exchange, [message("bound.a", b"x") for _ in range(5)])
    await asyncio.wait_for(asyncio.gather(*confirms), 10)
    assert await publish_batch(channel, exchange, []) == []
    assert len(store.futures) == before
    assert len(await collect(queue, 5)) == 5
