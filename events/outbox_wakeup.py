"""Tells the relays that an order committed an event, without a NOTIFY per order.

A relay running in this process is woken directly: no round trip, and the event goes out
as soon as the relay's coalescing pause (RELAY_COALESCE_MS) ends. A process without one (a
worker other than the first, or every process when RELAY_ENABLED=false and `order-service
relay` publishes) sends `NOTIFY outbox` for its relays, at most one per NOTIFY_INTERVAL
however many orders commit meanwhile. A NOTIFY in every order's transaction cost
PostgreSQL as much CPU again as the outbox insert (migration 0009). Relays also poll
(OUTBOX_POLL_INTERVAL), so a wake-up lost to a database error only delays an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
import structlog

from events.relay import LISTEN_CHANNEL, OutboxRelay
from service.background import running_in_background
from service.outside_failures import describe
from service.sql import queries

log = structlog.get_logger(__name__)

# What a relay in another process may wait beyond the commit; under load it is one NOTIFY
# for many orders instead of one each.
NOTIFY_INTERVAL = 0.005
NOTIFY_TIMEOUT = 2.0


class OutboxWakeup:
    def __init__(
        self,
        pool: asyncpg.Pool,
        relay: OutboxRelay | None,
        *,
        interval: float = NOTIFY_INTERVAL,
    ) -> None:
        self.pool = pool
        self.relay = relay
        self.interval = interval
        self._pending = asyncio.Event()

    def order_committed(self) -> None:
        """Called after each order's commit; never waits."""
        if self.relay is not None:
            self.relay.wake()
        else:
            self._pending.set()

    @contextlib.asynccontextmanager
    async def running(
        self, *, stop_within: Callable[[], float] | None = None
    ) -> AsyncIterator[None]:
        """Sends the NOTIFYs in a task for the body; on exit sends the one still owed.
        `stop_within`, asked as the stop goes on, caps each of its two steps."""
        try:
            async with running_in_background(
                self._notify_forever(), "outbox-wakeup", stop_within=stop_within
            ):
                yield
        finally:
            if self._pending.is_set():
                await self._notify(NOTIFY_TIMEOUT if stop_within is None else stop_within())

    async def _notify_forever(self) -> None:
        while True:
            await self._pending.wait()
            # Cleared before the NOTIFY: an order committed while it is sent owes another.
            self._pending.clear()
            try:
                await self._notify()
            except asyncio.CancelledError:
                # Shutdown on the way: still owed, the exit of running() sends it.
                self._pending.set()
                raise
            await asyncio.sleep(self.interval)

    async def _notify(self, seconds: float = NOTIFY_TIMEOUT) -> None:
        """Sends one NOTIFY. A failure is logged, never raised: the relays' poll finds
        the event, so nothing is lost."""
        try:
            async with asyncio.timeout(seconds), self.pool.acquire() as conn:
                await conn.execute(queries.notify, LISTEN_CHANNEL)
        except Exception as exc:  # noqa: BLE001 - a wake-up must never cost an order
            log.warning("outbox_notify_failed", error=describe(exc))
