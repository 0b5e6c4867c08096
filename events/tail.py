"""`order-service events tail`: watch order events as a consumer would see them.

Declares a server-named, exclusive, auto-delete queue bound to the events exchange with
the given binding pattern and prints each event (the CloudEvents envelope) as one JSON
line on stdout. The queue vanishes when the command stops, so tailing costs the broker
nothing afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any, TextIO

import aio_pika
import aiormq
import asyncpg
import orjson

from service.config import Config
from service.outside_failures import OUTSIDE_FAILURES
from service.sql import queries


async def events_waiting_for_a_queue(database_url: str, binding: str) -> int | None:
    """How many unsent events whose routing key `binding` matches wait for a first queue
    bound for them (none was, when the relay tried), or None when the database cannot be
    asked. The tail's own queue would be that first queue: those events would go to it
    alone, be marked sent, and never reach a consumer bound later."""
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            rows = await conn.fetch(queries.outbox_waiting_for_a_queue, timeout=5)
        finally:
            conn.terminate()
    except OUTSIDE_FAILURES:
        return None
    waiting: int = sum(row["waiting"] for row in rows if topic_matches(binding, row["routing_key"]))
    return waiting


def topic_matches(binding: str, routing_key: str) -> bool:
    """RabbitMQ's topic rule: words separated by dots, `*` one word, `#` zero or more."""
    return _words_match(binding.split("."), routing_key.split("."))


def _words_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _words_match(rest, words[1:])


def event_line(body: bytes) -> str:
    """One JSON line for a message body: the envelope itself, compacted; a body that is
    not JSON is shown as a string under "unparsed" so the stream stays JSON lines."""
    try:
        value: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = {"unparsed": body.decode("utf-8", "replace")}
    return orjson.dumps(value).decode()


async def tail(
    config: Config,
    *,
    binding: str,
    limit: int | None,
    out: TextIO | None = None,
    on_ready: Callable[[], None] | None = None,
    handle_signals: bool = True,
) -> int:
    """Prints events until `limit` events (if given), SIGINT or SIGTERM; returns the count.

    `on_ready` is called once the queue is bound (every event published after it is seen).
    """
    stream = sys.stdout if out is None else out
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for signum in stop_signals:
        loop.add_signal_handler(signum, stop.set)
    count = 0
    try:
        try:
            connection = await aio_pika.connect(config.amqp_url, timeout=10)
        except TimeoutError as exc:
            # A broker that takes the connection but never answers: named as the broker's
            # failure (command_failed names RabbitMQ), not a bare timeout.
            raise aiormq.exceptions.AMQPConnectionError(
                "RabbitMQ did not answer within 10 s"
            ) from exc
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                config.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, binding)
            if on_ready is not None:
                on_ready()
            messages: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
            await queue.consume(messages.put, no_ack=True)
            while limit is None or count < limit:
                message = await _next_message(messages, stop)
                if message is None:
                    break
                stream.write(event_line(message.body) + "\n")
                stream.flush()
                count += 1
    finally:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)
    return count


async def _next_message(
    messages: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage], stop: asyncio.Event
) -> aio_pika.abc.AbstractIncomingMessage | None:
    getting = asyncio.ensure_future(messages.get())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not getting.done():
            getting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
    return getting.result() if getting.done() and not getting.cancelled() else None
