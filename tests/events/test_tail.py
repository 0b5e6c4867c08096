"""`order-service events tail`: one JSON line per event, from a queue of its own."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from dataclasses import replace

import asyncpg
import orjson
import pytest

from events.tail import event_line, events_waiting_for_a_queue, tail, topic_matches
from service.config import Config
from tests.events.conftest import EventConsumer, PlaceOrders, StartRelay
from tests.events.test_relay import METADATA
from tests.support.service_process import service_env


async def test_tail_prints_each_event_as_one_json_line(
    placer: PlaceOrders, start_relay: StartRelay, config: Config
) -> None:
    out = io.StringIO()
    bound = asyncio.Event()
    tailing = asyncio.create_task(
        tail(
            config,
            binding="order.created",
            limit=None,
            out=out,
            on_ready=bound.set,
            handle_signals=False,
        )
    )
    await asyncio.wait_for(bound.wait(), 10)
    await start_relay()
    orders = await placer(2, metadata=METADATA)
    wanted = {order.event_id for order in orders}

    def printed() -> dict[str, dict[str, object]]:
        # Events other tests left unsent may come first (oldest first): look for ours.
        return {line["id"]: line for line in map(orjson.loads, out.getvalue().splitlines())}

    async with asyncio.timeout(20):
        while not wanted <= printed().keys():
            await asyncio.sleep(0.05)
    tailing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tailing

    assert all(line.endswith("}") for line in out.getvalue().splitlines())
    for order in orders:
        assert printed()[order.event_id] == order.payload


async def test_tail_binding_filters_by_routing_key(
    placer: PlaceOrders, start_relay: StartRelay, consumer: EventConsumer, config: Config
) -> None:
    out = io.StringIO()
    bound = asyncio.Event()
    tailing = asyncio.create_task(
        tail(
            config,
            binding="order.refunded",
            limit=None,
            out=out,
            on_ready=bound.set,
            handle_signals=False,
        )
    )
    await asyncio.wait_for(bound.wait(), 10)
    await start_relay()
    [order] = await placer()
    await consumer.wait_for([order.event_id])  # published, routed to order.created only
    tailing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tailing
    assert out.getvalue() == ""


def test_a_body_that_is_not_json_stays_one_json_line() -> None:
    assert orjson.loads(event_line(b"\xffnot json")) == {"unparsed": "\ufffdnot json"}
    assert event_line(b'{ "a" : 1 }') == '{"a":1}'


async def test_cli_tail_stops_after_limit(
    placer: PlaceOrders, start_relay: StartRelay, config: Config
) -> None:
    """The real command line in a subprocess, as a consumer developer runs it."""
    env = service_env(replace(config), LOG_LEVEL="warning")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "events",
        "tail",
        "--limit",
        "1",
        # Other tests leave events no queue was bound for; this one is about --limit.
        "--take-backlog",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await start_relay()
    assert process.stdout is not None
    # The queue is bound only once the process is up: keep writing orders until a line
    # arrives (each order is an event the tail may be the first to see).
    async with asyncio.timeout(30):
        line_task = asyncio.ensure_future(process.stdout.readline())
        while not line_task.done():
            await placer()
            await asyncio.wait({line_task}, timeout=0.3)
    line = line_task.result()
    envelope = orjson.loads(line)
    assert envelope["type"] == "com.order-service.order.created"
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_cli_tail_refuses_while_events_wait_for_a_first_queue(
    placer: PlaceOrders, db: asyncpg.Connection, config: Config
) -> None:
    # Its queue would be the first bound: the waiting events would go to it alone, be
    # marked sent, and never reach the consumer bound after it.
    [order] = await placer()
    await db.execute(
        "UPDATE outbox SET last_error = 'unroutable: no queue bound' WHERE event_id = $1::uuid",
        order.event_id,
    )
    try:
        # Only for a binding its routing key matches.
        assert (await events_waiting_for_a_queue(config.database_url, "order.#") or 0) >= 1
        assert await events_waiting_for_a_queue(config.database_url, "nothing.matches") == 0
        status, stdout, stderr = await tail_once(service_env(replace(config), LOG_LEVEL="warning"))
    finally:
        await db.execute(
            "UPDATE outbox SET published_at = now() WHERE event_id = $1::uuid", order.event_id
        )
    assert status == 2, stderr
    assert stdout == b""
    assert b"wait in the outbox for a first queue" in stderr
    assert b"--take-backlog" in stderr


async def test_the_backlog_question_without_a_database_is_no_answer() -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/none"
    assert await events_waiting_for_a_queue(unreachable, "order.created") is None


async def test_cli_tail_refuses_when_it_cannot_ask_the_database(config: Config) -> None:
    # A typo in DATABASE_URL must not let the tail take what waits for the consumers.
    env = service_env(replace(config), LOG_LEVEL="warning")
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    status, _, stderr = await tail_once(env)
    assert status == 2, stderr
    assert b"could not ask the database" in stderr


async def tail_once(env: dict[str, str]) -> tuple[int | None, bytes, bytes]:
    """`events tail --limit 1` run to its end: its status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "service.cli", "events", "tail", "--limit", "1"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize(
    ("binding", "routing_key", "matches"),
    [
        ("order.created", "order.created", True),
        ("order.#", "order.created", True),
        ("#", "order.created", True),
        ("order.*", "order.created", True),
        ("*.created.#", "order.created", True),
        ("order.#.created", "order.created", True),
        ("nothing.matches.this", "order.created", False),
        ("order", "order.created", False),
        ("order.*.*", "order.created", False),
    ],
)
def test_a_binding_matches_routing_keys_as_rabbitmqs_topic_exchange_does(
    binding: str, routing_key: str, matches: bool
) -> None:
    assert topic_matches(binding, routing_key) is matches
