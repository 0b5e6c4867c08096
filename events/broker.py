"""One AMQP connection per process, kept open by a background task that reconnects with
capped exponential backoff, so the service starts and takes orders while RabbitMQ is down.

aio-pika's connect_robust would reconnect by itself, but it swallows cancellation while
a connection attempt is under way, which makes a clean shutdown impossible; this loop
gives the same robustness with cancellation that works.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection

log = structlog.get_logger(__name__)

CLOSE_TIMEOUT = 3.0


class Broker:
    def __init__(self, url: str, *, max_backoff: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.connection: AbstractConnection | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        while True:
            try:
                connection = await aio_pika.connect(self.url, timeout=self.connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying whatever went wrong
                log.warning("broker_connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay = 0.1
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
            self.connection = connection
            self._ready.set()
            log.info("broker_connected")
            try:
                await lost.wait()
            finally:
                self._ready.clear()
                self.connection = None
                if not connection.is_closed:
                    # Bounded: a broker that does not answer must not hold up shutdown.
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(CLOSE_TIMEOUT):
                            await connection.close()
            log.warning("broker_connection_lost")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
