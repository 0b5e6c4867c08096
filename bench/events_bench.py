"""Event figures: lag from commit to a consumer's receipt at a steady order rate, and the
relay's drain rate for a backlog.

Commit time is the outbox row's `created_at` (now(), the start of the order's one-statement
transaction, a millisecond or so before its commit), so the lag reported errs high.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.corpus import initials_request
from bench.stats import percentile

UNSENT_EVENTS = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
# `published_at` is now() of the relay's transaction: the moment it claimed the row.
COMMIT_TIMES = """
SELECT event_id::text AS event_id, extract(epoch FROM created_at)::float8 AS committed,
       extract(epoch FROM published_at)::float8 AS claimed
  FROM outbox WHERE event_id = ANY($1::uuid[])
"""
# A backlog of real events: copies of the newest event with fresh ids (in the row and in
# the envelope, whichever the relay takes as the message id).
MAKE_BACKLOG = """
INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
SELECT g.id, t.event_type, t.routing_key, t.aggregate_id,
       jsonb_set(t.payload, '{id}', to_jsonb(g.id::text))
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) AS g,
       (SELECT event_type, routing_key, aggregate_id, payload
          FROM outbox ORDER BY id DESC LIMIT 1) AS t
"""
PUBLISH_SPAN = """
SELECT extract(epoch FROM min(published_at))::float8, extract(epoch FROM max(published_at))::float8
  FROM outbox WHERE event_id = ANY($1::uuid[])
"""
NEW_EVENT_IDS = "SELECT event_id::text FROM outbox WHERE published_at IS NULL"
SINK_LENGTH = 10_000


@dataclass
class Consumer:
    process: subprocess.Popen[str]
    out: Path

    def receipts(self, timeout: float) -> dict[str, float]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(5)
        if not self.out.exists():
            return {}
        receipts: dict[str, float] = orjson.loads(self.out.read_bytes())
        return receipts


def start_consumer(
    amqp_url: str, exchange: str, expect: int, timeout: float, out: Path
) -> Consumer:
    """A consumer process whose queue is bound when this returns."""
    process = subprocess.Popen(
        [
            sys.executable, "-m", "bench.consumer", "--amqp-url", amqp_url,
            "--exchange", exchange, "--expect", str(expect), "--timeout", str(timeout),
            "--out", str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise RuntimeError(f"event consumer did not start: {line!r}")
    return Consumer(process, out)


async def wait_for_drained(database_url: str, timeout: float) -> float:
    """Waits until the relay has sent every event; the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        while await conn.fetchval(UNSENT_EVENTS):
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"outbox not drained in {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _send_paced(base_url: str, rate: float, seconds: float, run: str) -> dict[str, int]:
    """Open-loop: request i leaves at i/rate whatever the earlier ones are doing."""
    statuses: dict[str, int] = {}
    total = int(rate * seconds)

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        request = initials_request(n, run)
        try:
            async with session.post(
                base_url + request.path, data=request.body, headers=request.headers
            ) as response:
                await response.read()
                key = str(response.status)
        except aiohttp.ClientError as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for n in range(total):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, n)))
        await asyncio.gather(*tasks)
    return statuses


async def _commit_times(
    database_url: str, event_ids: list[str]
) -> dict[str, tuple[float, float | None]]:
    """Each event's commit time and the time the relay claimed it."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(COMMIT_TIMES, event_ids)
    finally:
        await conn.close()
    return {row["event_id"]: (row["committed"], row["claimed"]) for row in rows}


def measure_lag(
    *,
    service_url: str,
    database_url: str,
    amqp_url: str,
    exchange: str,
    rate: float,
    seconds: float,
    run: str,
    work_dir: Path,
) -> dict[str, Any]:
    """Orders at `rate`/s for `seconds` through /api/v2/initials/url; lag of their events."""
    import uvloop

    expected = int(rate * seconds)
    consumer = start_consumer(
        amqp_url, exchange, expected, seconds + 30, work_dir / "lag-receipts.json"
    )
    statuses = uvloop.run(_send_paced(service_url, rate, seconds, run))
    receipts = consumer.receipts(timeout=seconds + 35)
    times = uvloop.run(_commit_times(database_url, list(receipts)))
    lags_ms = sorted(
        (arrived - times[event_id][0]) * 1000
        for event_id, arrived in receipts.items()
        if event_id in times
    )
    # The lag in two: the wait for the relay to claim the event (its wake-up, coalescing
    # pause, the round before), and from the claim to the consumer (the publish, the
    # broker's confirm and delivery, the consumer's process).
    until_claim_ms = sorted(
        (claimed - committed) * 1000 for committed, claimed in times.values() if claimed is not None
    )
    after_claim_ms = sorted(
        (arrived - claimed) * 1000
        for event_id, arrived in receipts.items()
        if event_id in times and (claimed := times[event_id][1]) is not None
    )
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": expected,
        "statuses": statuses,
        "received": len(receipts),
        "matched": len(lags_ms),
        "p50_ms": round(percentile(lags_ms, 50), 2),
        "p99_ms": round(percentile(lags_ms, 99), 2),
        "max_ms": round(lags_ms[-1], 2) if lags_ms else float("nan"),
        "until_claim_p50_ms": round(percentile(until_claim_ms, 50), 2),
        "until_claim_p99_ms": round(percentile(until_claim_ms, 99), 2),
        "after_claim_p50_ms": round(percentile(after_claim_ms, 50), 2),
        "after_claim_p99_ms": round(percentile(after_claim_ms, 99), 2),
    }


async def _make_backlog(database_url: str, events: int) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval(UNSENT_EVENTS):
            raise RuntimeError("the outbox has unsent events before the backlog is made")
        await conn.execute(MAKE_BACKLOG, events)
        return [row["event_id"] for row in await conn.fetch(NEW_EVENT_IDS)]
    finally:
        await conn.close()


async def _publish_span(database_url: str, event_ids: list[str]) -> tuple[float, float]:
    conn = await asyncpg.connect(database_url)
    try:
        first, last = await conn.fetchrow(PUBLISH_SPAN, event_ids)
    finally:
        await conn.close()
    return first, last


def measure_drain(
    *,
    relay_command: list[str],
    env: Mapping[str, str],
    database_url: str,
    amqp_url: str,
    exchange: str,
    events: int,
    work_dir: Path,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Makes a backlog of `events` with no relay running, starts one, and times the drain.

    The rate is taken between the first and the last event a consumer receives, so the
    relay's start-up (connections, first query) is not in it; `seconds_from_start` has it.
    """
    import uvloop

    event_ids = uvloop.run(_make_backlog(database_url, events))
    consumer = start_consumer(amqp_url, exchange, events, timeout, work_dir / "drain.json")
    with (work_dir / "relay.log").open("ab") as log:
        started = time.time()
        relay = subprocess.Popen(relay_command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    try:
        drained_after = uvloop.run(wait_for_drained(database_url, timeout))
        receipts = consumer.receipts(timeout=30)
    finally:
        relay.terminate()
        try:
            relay.wait(15)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
    arrivals = sorted(receipts.values())
    wanted = set(event_ids)
    received = sum(1 for event_id in receipts if event_id in wanted)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    first_mark, last_mark = uvloop.run(_publish_span(database_url, event_ids))
    return {
        "events": events,
        "received": received,
        "events_per_s": round((len(arrivals) - 1) / span, 1) if span > 0 else float("nan"),
        "seconds_first_to_last_receipt": round(span, 3),
        "seconds_from_start": round(drained_after, 3),
        "seconds_start_to_first_receipt": round(arrivals[0] - started, 3) if arrivals else None,
        "marked_sent_span_s": round(last_mark - first_mark, 3),
    }


async def declare_sink(amqp_url: str, exchange: str, queue: str) -> None:
    """The bench's exchange with one bound queue, as production has consumers bound: without
    it every mandatory publish comes back as basic.return, work no real deployment does.
    The queue keeps the newest 10,000 events in memory (not durable), dropping older ones."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        events = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        sink = await channel.declare_queue(
            queue, durable=False, arguments={"x-max-length": SINK_LENGTH}
        )
        await sink.bind(events, "#")


async def delete_exchange(amqp_url: str, exchange: str, queue: str | None = None) -> None:
    """The benchmark's own exchange (and sink queue) go when the run ends."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        if queue is not None:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
