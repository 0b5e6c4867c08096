"""Load, an event consumer and the books for the fault tests.

A request is identified by its x-token (stored as orders.request_token), so the books can
tell for every request whether it left an order, whatever answer it got. A client that
retries (PostgreSQL cut) sends one logical request as several attempts with one
Idempotency-Key, each attempt signed anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import orjson

from service.auth.signing import compute_token, signed_headers

INITIALS_PATH = "/api/v2/initials/url"
EYEZY_KEY = ("pk_eyezy_1", "sk_eyezy_1_secret")
# Answers after which the same Idempotency-Key is tried again: nothing definite happened.
RETRYABLE = frozenset({None, 409, 502, 503, 504})


def signed(raw: bytes, path: str = INITIALS_PATH) -> dict[str, str]:
    """Signed headers with an x-date to the microsecond: every call is a new request."""
    headers = signed_headers(EYEZY_KEY[0], EYEZY_KEY[1], "POST", path, raw)
    x_date = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    headers["x-date"] = x_date
    headers["x-token"] = compute_token(EYEZY_KEY[1], "POST", path, x_date, raw)
    headers["Content-Type"] = "application/json"
    return headers


def initials_body(**extra: Any) -> bytes:
    return orjson.dumps({"product": {"code": "basic_1m"}, **extra})


@dataclass
class Attempt:
    token: str
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    order_id: str | None = None
    code: str | None = None
    replayed: bool = False


@dataclass
class LogicalRequest:
    key: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


def _order_id(body: Any) -> str | None:
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        return str(body["data"]["url"]).rsplit("/", 1)[1]
    return None


async def post_initials(
    session: aiohttp.ClientSession,
    base_url: str,
    raw: bytes,
    idempotency_key: str | None = None,
) -> Attempt:
    headers = signed(raw)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    token = headers["x-token"]
    try:
        async with session.post(base_url + INITIALS_PATH, data=raw, headers=headers) as resp:
            body = await resp.json(content_type=None)
            attempt = Attempt(token, resp.status)
            attempt.replayed = resp.headers.get("Idempotent-Replayed") == "true"
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Attempt(token, None)
    if attempt.status == 200:
        attempt.order_id = _order_id(body)
    elif isinstance(body, dict) and isinstance(body.get("error"), dict):
        attempt.code = body["error"].get("code")
    return attempt


class Load:
    """`clients` concurrent clients posting orders until stopped."""

    def __init__(self, base_url: str, clients: int = 8, *, retry: bool = False) -> None:
        self.base_url = base_url
        self.clients = clients
        self.retry = retry
        self.requests: list[LogicalRequest] = []
        self._stop = asyncio.Event()
        self._retry_deadline = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=15)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]

    async def stop(self, retry_deadline: float = 30.0) -> None:
        """Stops new requests; retries in progress get `retry_deadline` seconds to settle."""
        self._stop.set()
        self._retry_deadline = time.monotonic() + retry_deadline
        await asyncio.gather(*self._tasks)
        assert self._session is not None
        await self._session.close()

    async def _client(self, n: int) -> None:
        assert self._session is not None
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            request = LogicalRequest(f"fault-{uuid.uuid4().hex}")
            self.requests.append(request)
            raw = initials_body(metaData={"client": n, "sequence": sequence})
            key = request.key if self.retry else None
            while True:
                attempt = await post_initials(self._session, self.base_url, raw, key)
                request.attempts.append(attempt)
                if not self.retry or attempt.status not in RETRYABLE:
                    break
                if self._stop.is_set() and time.monotonic() > self._retry_deadline:
                    break
                await asyncio.sleep(0.1)
            if attempt.status is None and not self.retry:
                # The service is gone (SIGTERM): do not spin on refused connections.
                await asyncio.sleep(0.05)

    @property
    def attempts(self) -> list[Attempt]:
        return [a for r in self.requests for a in r.attempts]


class EventConsumer:
    """A queue of its own bound to the test's exchange; records every delivery."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.deliveries: list[tuple[str, str]] = []  # (message_id, subject = order id)
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> EventConsumer:
        self._connection = await aio_pika.connect(self.amqp_url)
        channel = await self._connection.channel()
        self._exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self._exchange, "order.created")
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        envelope = orjson.loads(message.body)
        self.deliveries.append((str(message.message_id), str(envelope["subject"])))

    @property
    def order_ids(self) -> set[str]:
        return {subject for _, subject in self.deliveries}

    @property
    def duplicates(self) -> int:
        return len(self.deliveries) - len({m for m, _ in self.deliveries})

    async def wait_for(self, order_ids: set[str], timeout: float = 30.0) -> None:
        await wait_until(lambda: order_ids <= self.order_ids, timeout)

    async def close(self) -> None:
        if self._exchange is not None:
            with contextlib.suppress(Exception):
                await self._exchange.delete()
        if self._connection is not None:
            await self._connection.close()


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


@dataclass
class Books:
    """What the fault left behind, checked request by request."""

    name: str
    requests_sent: int
    attempts: int
    ok: int
    orders_stored: int
    events_received: int
    duplicate_deliveries: int
    orders_lost: int  # a 200 whose order is not stored exactly once
    events_lost: int  # a stored order of a 200 whose event never arrived
    orders_without_200: int  # a request without a 200 that left an order anyway
    notes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.notes.items())
        return (
            f"[fault] {self.name}: requests sent {self.requests_sent} (attempts "
            f"{self.attempts}), 200s {self.ok}, orders stored {self.orders_stored}, events "
            f"received {self.events_received} (duplicate deliveries "
            f"{self.duplicate_deliveries}), orders lost {self.orders_lost}, events lost "
            f"{self.events_lost}, orders without a 200 {self.orders_without_200}{extra}"
        )

    def assert_clean(self) -> None:
        assert self.orders_lost == 0, self.line()
        assert self.events_lost == 0, self.line()
        assert self.orders_without_200 == 0, self.line()


async def check_books(
    name: str,
    db: asyncpg.Connection,
    requests: list[LogicalRequest],
    consumer: EventConsumer,
    *,
    event_timeout: float = 30.0,
) -> Books:
    """Every request with a final 200 has exactly its order, and its event; every request
    without one left no order (checked over all its attempts' x-tokens)."""
    tokens = [a.token for r in requests for a in r.attempts]
    rows = await db.fetch(
        "SELECT id, request_token FROM orders WHERE request_token = ANY($1::text[])", tokens
    )
    order_by_token = {r["request_token"]: r["id"] for r in rows}
    orders_lost = orders_without_200 = 0
    expected_events: set[str] = set()
    for request in requests:
        stored = {order_by_token[a.token] for a in request.attempts if a.token in order_by_token}
        final = request.final
        if final.status == 200:
            if final.order_id is None or stored != {final.order_id}:
                orders_lost += 1
            else:
                expected_events.add(final.order_id)
        elif stored:
            orders_without_200 += 1
    await consumer.wait_for(expected_events, event_timeout)
    received = consumer.order_ids
    stray = {order_by_token[t] for t in order_by_token} - expected_events
    attempts = [a for r in requests for a in r.attempts]
    return Books(
        name=name,
        requests_sent=len(requests),
        attempts=len(attempts),
        ok=sum(1 for r in requests if r.final.status == 200),
        orders_stored=len(rows),
        events_received=len(received & (expected_events | stray)),
        duplicate_deliveries=consumer.duplicates,
        orders_lost=orders_lost,
        events_lost=len(expected_events - received),
        orders_without_200=orders_without_200,
    )
