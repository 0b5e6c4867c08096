"""One AMQP connection per process, kept open by a background task that reconnects with
capped exponential backoff, so the service starts and takes orders while RabbitMQ is down.

aio-pika's connect_robust would reconnect by itself, but it swallows cancellation while
a connection attempt is under way, which makes a clean shutdown impossible; this loop
gives the same robustness with cancellation that works.

Cancellation alone is not enough, though: aio_pika.connect() runs the handshake under
asyncio.wait_for, which before Python 3.12 swallows a cancel that lands in the loop
iteration in which the handshake completes (it returns the connection instead). close()
therefore also sets a flag that the loop checks after every connect, and waits for the
task only for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection

from service.outside_failures import describe

log = structlog.get_logger(__name__)

CLOSE_TIMEOUT = 3.0
# The AMQP heartbeat asked for unless AMQP_URL names one. A broker that stops answering
# without closing the connection is noticed after three missed heartbeats (aiormq waits
# (10 + 1) x 3 = 33 s), where the 60 s that RabbitMQ proposes left readiness saying "ok"
# for three minutes.
HEARTBEAT_SECONDS = 10


def with_heartbeat(url: str, seconds: int = HEARTBEAT_SECONDS) -> str:
    """`url` asking for a `seconds` heartbeat, unless it already asks for one."""
    parts = urlsplit(url)
    if "heartbeat" in parse_qs(parts.query):
        return url
    query = f"{parts.query}&heartbeat={seconds}" if parts.query else f"heartbeat={seconds}"
    return urlunsplit(parts._replace(query=query))


class Broker:
    def __init__(self, url: str, *, max_backoff: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.url = with_heartbeat(url)
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.connection: AbstractConnection | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._lost: asyncio.Event | None = None  # set: the current connection is done for

    @property
    def connected(self) -> bool:
        conn = self.connection
        return conn is not None and not conn.is_closed and self._ready.is_set()

    async def wait_connected(self) -> AbstractConnection:
        """The open connection, waiting for one if the broker is unreachable right now."""
        while True:
            await self._ready.wait()
            conn = self.connection
            if conn is not None and not conn.is_closed:
                return conn
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected(), name="amqp-connection")

    async def _keep_connected(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                connection = await aio_pika.connect(self.url, timeout=self.connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying whatever went wrong
                if self._closing:
                    return
                log.warning("broker_connect_failed", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if self._closing:
                # close() ran while connecting and its cancel was lost (see above).
                await _close_bounded(connection)
                return
            delay = 0.1
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
            self._lost = lost
            self.connection = connection
            self._ready.set()
            log.info("broker_connected")
            try:
                await lost.wait()
            finally:
                self._ready.clear()
                self.connection = None
                await _close_bounded(connection)
            log.warning("broker_connection_lost")

    def give_up(self, connection: AbstractConnection, reason: str) -> None:
        """Drops `connection` if it is still the current one, and connects anew: for a
        connection on which RabbitMQ stopped answering while its heartbeats still come (a
        channel that does not open, say), which aiormq never gives up by itself."""
        if self.connection is not connection or self._lost is None or self._lost.is_set():
            return
        log.warning("broker_connection_given_up", reason=reason)
        self._ready.clear()
        self._lost.set()

    async def close(self, within: float = CLOSE_TIMEOUT + 1.0) -> bool:
        """Closes the connection and stops reconnecting; False when that did not end
        within `within` seconds and was given up (the connection is dropped with the
        process)."""
        task = self._task
        if task is None:
            return True
        self._closing = True
        task.cancel()
        # Bounded too (the task's own clean-up takes at most CLOSE_TIMEOUT): whatever the
        # task is stuck in, shutdown goes on.
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            log.error("broker_task_did_not_stop", seconds=round(within, 3))
            task.cancel()
            return False
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True


async def _close_bounded(connection: AbstractConnection) -> None:
    if not connection.is_closed:
        # Bounded: a broker that does not answer must not hold up shutdown.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await connection.close()
