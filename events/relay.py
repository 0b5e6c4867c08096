"""The outbox relay: publishes committed `outbox` rows to RabbitMQ, at least once.

One round: claim the oldest unsent rows that are due with `FOR UPDATE SKIP LOCKED`
inside a transaction, publish all of them (mandatory, persistent, publisher confirms),
wait for all the confirms together, then mark in the same transaction only the confirmed
rows.
While a round waits for its confirms, a commit can start the next round (claim and send, in
a transaction of its own that skips the rows locked by the first); at most two are in
flight. The row locks are what keeps several relays (one per worker process or instance) from
publishing the same row at the same time; a relay that dies after publishing but before
its commit leaves the rows unsent, so they go out again with the same `message_id`.

Unroutable events: RabbitMQ returns a mandatory message that no queue is bound for and
then confirms it; the message is gone from the broker. Such an event is logged (event id
and routing key) and counted (order_service_events_unroutable_total), and its row stays
unsent with `last_error = 'unroutable: ...'` and is deferred alone: it is due again after
DEFER_INITIAL seconds, doubling with each try up to DEFER_MAX, while the events behind it
go out at once; a deferred row is claimed, in id order with the rest, at the first round
after it is due. A batch that publishes nothing at all (no queue bound for any event, say)
also backs the relay off as a failure does, so a backlog nobody consumes costs at most a
batch per MAX_BACKOFF. So the first queue bound for its routing key receives every event
committed before it, not necessarily in commit order. An event is never dropped for want
of a consumer; the outbox backlog gauges show the wait. A row whose envelope cannot be
sent at all is deferred the same way.

Wake-ups: wake() from an order committed in this process, PostgreSQL NOTIFY 'outbox'
from other processes (events/outbox_wakeup.py), and a poll every OUTBOX_POLL_INTERVAL
seconds in case a wake-up is missed. While RabbitMQ is
unreachable the relay waits for the Broker (which reconnects with capped exponential
backoff); other failures (confirm timeouts, database errors) back off the same way. A
message the broker nacks (a queue bound for it is full and refuses more, say) may still
have reached other queues: its row is deferred alone, as an unroutable one is, so those
queues get a copy per deferral, not one per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import asyncpg
import structlog
from aiormq.abc import DeliveredMessage

from events.amqp_frames import Properties, event_properties
from events.batch_publish import OutgoingMessage, publish_batch
from events.broker import Broker
from events.envelope import CONTENT_TYPE, stored_envelope_headers
from service.cleanup_deadline import SHORTEST_STEP_SECONDS
from service.config import Config
from service.db import close_pool, create_pool, run_again_if_lost
from service.metrics import (
    EVENT_PUBLISH_FAILURES,
    EVENTS_PUBLISHED,
    EVENTS_UNROUTABLE,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
)
from service.outside_failures import describe
from service.sql import queries

log = structlog.get_logger(__name__)

LISTEN_CHANNEL = "outbox"
INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 5.0
# A publish not confirmed within this time counts as failed; the row is sent again.
CONFIRM_TIMEOUT = 10.0
# After a cancel lets the batch in flight finish, how long before a second one abandons it.
ABANDON_BATCH_AFTER = 1.0
CHANNEL_CLOSE_TIMEOUT = 2.0
HOUSEKEEPING_INTERVAL = 60.0
# The backlog gauges are refreshed at most this often; the backlog log line while
# events wait, at most every BACKLOG_LOG_INTERVAL.
BACKLOG_REFRESH_INTERVAL = 1.0
BACKLOG_LOG_INTERVAL = 10.0
DELETE_CHUNK = 5000
# A listening connection that has been quiet this long is pinged, so a dead one is noticed.
LISTENER_PING_INTERVAL = 30.0
# What the listener's connect, LISTEN and ping may take: a connection that stopped
# answering would otherwise hold it for good (the poll would still find the events, later).
LISTENER_ANSWER_TIMEOUT = 5.0
PERSISTENT = 2
# An unroutable batch logs this many of its event ids (all of them are in the outbox).
UNROUTABLE_IDS_LOGGED = 20
# An unroutable (or unsendable) row is due again after DEFER_INITIAL * 2^(attempts - 1)
# seconds, at most DEFER_MAX: long enough that a backlog nobody consumes costs the broker
# little, short enough that a consumer bound late has its events within a minute.
DEFER_INITIAL = 0.1
DEFER_MAX = 60.0
APP_ID = "order-service"
# The coalescing pause (RELAY_COALESCE_MS) follows a batch of at least this many events: the
# relay is behind the commits (under load a batch holds a writer's commit or more, about 16).
# At a few hundred orders a second a round finds one to five, more when the machine is slow,
# and a pause would only add to every event's lag; with a lower bar (4) the pauses fed on
# themselves at slow moments, each one making the next round larger (the lag's median at
# 200 orders/s: 15-25 ms, against 6-8 without a pause).
COALESCE_AFTER = 8


class BrokerUnavailable(ConnectionError):
    """RabbitMQ is not connected right now; the Broker is reconnecting."""


class InvalidEnvelope(ValueError):
    """An outbox row whose envelope cannot be turned into a message; it stays unsent."""


class DrainOutcome(enum.Enum):
    IDLE = "idle"  # everything due was published; wait for the next wake-up or poll
    BROKER_DOWN = "broker_down"  # wait for the Broker to reconnect
    FAILED = "failed"  # something failed; back off before the next try


@dataclass(frozen=True, slots=True)
class BatchResult:
    claimed: int = 0
    published: int = 0
    unroutable: int = 0
    failed: int = 0
    invalid: int = 0  # of the failed: rows whose envelope cannot be sent at all
    refused: int = 0  # of the failed: messages the broker nacked


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: bool
    error: str | None = None
    unroutable: bool = False
    invalid: bool = False
    refused: bool = False

    @property
    def deferred(self) -> bool:
        """Due again only after a wait of its own (outbox.next_attempt_at)."""
        return self.unroutable or self.invalid or self.refused


class OutboxRelay:
    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool,
        broker: Broker,
        *,
        max_backoff: float = MAX_BACKOFF,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        defer_initial: float = DEFER_INITIAL,
        defer_max: float = DEFER_MAX,
    ) -> None:
        self.config = config
        self.pool = pool
        self.broker = broker
        self.exchange = config.events_exchange
        self.batch_size = config.relay_batch_size
        self.max_backoff = max_backoff
        self.confirm_timeout = confirm_timeout
        self.defer_initial = defer_initial
        self.defer_max = defer_max
        self._wake = asyncio.Event()
        # For tests and probes: set while the relay waits for a wake-up with none pending,
        # and once LISTEN is active (after its catch-up wake-up was asked for).
        self.idle = asyncio.Event()
        self.listening = asyncio.Event()
        self._busy = False  # the last batch claimed COALESCE_AFTER events or more
        self._stopping = asyncio.Event()
        # Set when running() had to abandon the batch in flight (its rows stay unsent).
        self.batch_abandoned = False
        self._channel: Any = None  # aio_pika channel with publisher confirms
        self._channel_connection: Any = None
        # The first housekeeping one interval after the start: a restart loop gains
        # nothing from it, and a test's app never races it.
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
        self._next_backlog_refresh = 0.0
        self._next_backlog_log = 0.0

    # ---- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Asks the relay to stop once the batch in flight is published and marked."""
        self._stopping.set()
        self.wake()

    def wake(self) -> None:
        """An event was committed: publish it without waiting for the next poll."""
        self.idle.clear()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Publishes until stop() (or cancellation, which also lets the batch in flight
        finish and be marked so nothing it published is sent twice without need).

        A failure that ends a run is logged at once (`relay_crashed`, with its traceback)
        and the relay starts again after a backoff. Every failure a round expects is
        handled in it, so this is a defect's way out; a relay that died of it would leave
        every event in the outbox, while orders go on being taken, until a restart."""
        backoff = INITIAL_BACKOFF
        while True:
            started = time.monotonic()
            try:
                await self._run_until_stopped()
                return
            except Exception:  # whatever ended it, the events must go out
                if time.monotonic() - started > self.max_backoff:
                    backoff = INITIAL_BACKOFF  # a crash after a good run starts a new series
                log.exception("relay_crashed", restart_in_s=backoff)
            await self._sleep(backoff, self._stopping)
            if self.stopping:
                return
            backoff = min(backoff * 2, self.max_backoff)

    async def _run_until_stopped(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        backoff = INITIAL_BACKOFF
        try:
            while not self.stopping:
                self._wake.clear()
                outcome = await self._finish_when_cancelled(self._drain())
                await self._housekeeping_if_due()
                await self._refresh_backlog_if_due()
                if outcome is DrainOutcome.IDLE:
                    backoff = INITIAL_BACKOFF
                    if not self._wake.is_set():
                        self.idle.set()
                    await self._sleep(self.config.outbox_poll_interval, self._wake)
                    self.idle.clear()
                    if self._wake.is_set() and self._busy and self.config.relay_coalesce_ms:
                        # Under load every commit wakes the relay; a short pause lets
                        # concurrent commits join one batch instead of paying a claim each.
                        # At a light load (the last round found fewer than COALESCE_AFTER)
                        # it would only add to every event's lag.
                        await self._sleep(self.config.relay_coalesce_ms / 1000, self._stopping)
                elif outcome is DrainOutcome.BROKER_DOWN:
                    backoff = INITIAL_BACKOFF
                    await self._wait_for_broker(BACKLOG_REFRESH_INTERVAL)
                else:
                    await self._sleep(backoff, self._stopping)
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._close_channel()
            log.info("relay_stopped")

    @contextlib.asynccontextmanager
    async def running(
        self, shutdown_timeout: float, *, stop_within: Callable[[], float] | None = None
    ) -> AsyncIterator[None]:
        """Runs the relay in a task for the body; on exit stops it after its current
        batch, waiting at most `shutdown_timeout` seconds, then cancels it: a first
        cancel lets the batch in flight finish, a second one a moment later abandons it
        (its rows stay unsent, so nothing is lost; at worst one is published again).

        `stop_within`, asked when the stop starts, caps the whole stop (the waits after
        the two cancels included): a worker's clean-up has its other steps to fit in."""
        task = asyncio.create_task(self.run(), name="outbox-relay")
        try:
            yield
        finally:
            self.stop()
            first_wait, after_cancel = _stop_waits(
                shutdown_timeout, None if stop_within is None else stop_within()
            )
            done, _ = await asyncio.wait({task}, timeout=first_wait)
            if not done:
                log.warning("relay_stop_timeout", timeout=round(first_wait, 3))
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=after_cancel)
                if not done:
                    self.batch_abandoned = True
                    task.cancel()
                    done, _ = await asyncio.wait({task}, timeout=after_cancel)
                if not done:
                    # Never hold up shutdown: whatever it holds is released when the
                    # pool and the broker connection close.
                    log.error("relay_did_not_stop")
                else:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            elif not task.cancelled() and task.exception() is not None:
                log.error("relay_crashed", error=repr(task.exception()))

    async def _finish_when_cancelled(self, work: Any) -> DrainOutcome:
        task: asyncio.Task[DrainOutcome] = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Stop after the current batch: its waits are bounded (confirm timeout, pool
            # timeouts), and marking what was confirmed avoids needless duplicates. A
            # second cancellation abandons the batch.
            self.stop()
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                raise
            raise

    async def _sleep(self, seconds: float, event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def _wait_for_broker(self, seconds: float) -> None:
        waits = [
            asyncio.ensure_future(self.broker.wait_connected()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # ---- publishing --------------------------------------------------------------------

    async def _drain(self) -> DrainOutcome:
        """Publishes batches until the outbox is empty, something fails, or stop().

        Pipelined: while one batch waits for its confirms (RabbitMQ confirms a persistent
        message once it is on disk, several milliseconds), the next can be claimed and
        sent, as soon as a commit wakes the relay. The two never hold the same row (the
        claim skips locked rows) and go out on one channel, oldest first. At most two
        batches are in flight; the drain returns only when both are settled.
        """
        settling: asyncio.Task[BatchResult | None] | None = None  # sent, awaiting confirms
        newest: asyncio.Task[BatchResult | None] | None = None  # claiming and sending
        try:
            while not self.stopping:
                self._wake.clear()
                sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                newest = asyncio.create_task(self._round_in_flight(sent))
                try:
                    claimed = await sent
                except BrokerUnavailable:
                    return DrainOutcome.BROKER_DOWN
                except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, back off
                    log.warning("relay_batch_failed", error=describe(exc))
                    return DrainOutcome.FAILED
                previous, settling, newest = settling, newest, None
                if previous is not None and not _succeeded(await previous):
                    return DrainOutcome.FAILED
                self._busy = claimed >= COALESCE_AFTER
                if not claimed:
                    return DrainOutcome.IDLE
                if claimed >= self.batch_size:
                    await self._refresh_backlog_if_due()  # a long drain reports its progress
                    continue
                # Caught up: wait for the confirms, or claim the next batch meanwhile if a
                # commit wakes the relay first. Not when the relay is behind the commits
                # (busy): then the commits gather while the confirms come in, and run()'s
                # coalescing pause, so that a round per commit does not cost PostgreSQL a
                # claim and a mark each.
                wake_ups = (self._stopping,) if self._busy else (self._wake, self._stopping)
                await self._first_of(settling, *wake_ups)
                if settling.done():
                    result, settling = settling.result(), None
                    if not _succeeded(result):
                        return DrainOutcome.FAILED
                    if self._busy or not self._wake.is_set():
                        return DrainOutcome.IDLE
            return DrainOutcome.IDLE
        except asyncio.CancelledError:
            # Cancelled itself (the second cancel of running()): abandon the batches in
            # flight too; their transactions roll back and their rows stay unsent.
            in_flight = [task for task in (settling, newest) if task is not None]
            settling = newest = None
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        finally:
            for still_running in (settling, newest):
                if still_running is not None:
                    await still_running

    async def _first_of(self, task: asyncio.Task[Any], *events: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait([task, *waits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def publish_batch(self) -> BatchResult:
        """Claims up to relay_batch_size unsent rows that are due, oldest first,
        publishes them all, waits for their confirms and marks the confirmed ones sent, in
        one transaction.

        Raises BrokerUnavailable (nothing claimed) while RabbitMQ is not connected.
        """
        return await self._round()

    async def _round(self, sent: asyncio.Future[int] | None = None) -> BatchResult:
        """publish_batch(); `sent` is given the number of rows claimed once they are sent
        (0: none was due), before the wait for their confirms."""
        channel = await self._publisher()
        claimed = False

        async def claim_publish_and_mark(conn: asyncpg.Connection) -> BatchResult:
            nonlocal claimed
            async with conn.transaction():
                rows = await conn.fetch(queries.outbox_claim_batch, self.batch_size)
                claimed = True
                confirms = await self._publish_rows(channel, rows) if rows else []
                if sent is not None and not sent.done():
                    sent.set_result(len(rows))
                if not rows:
                    return BatchResult()
                outcomes = await self._outcomes(rows, confirms)
                await self._record_outcomes(conn, rows, outcomes)
            return self._account(rows, outcomes)

        # A connection lost before the claim came back (a database restart ends the pooled
        # ones) is claimed on again at once, on a new one, rather than after a backoff.
        # Once rows were claimed they may have been sent: they stay unsent, for a later
        # round to send again.
        return await run_again_if_lost(
            self.pool, claim_publish_and_mark, may_run_again=lambda: not claimed
        )

    async def _round_in_flight(self, sent: asyncio.Future[int]) -> BatchResult | None:
        """_round() as a task of its own, so that its transaction and connection are
        always released by the task that took them. A failure before the batch is sent goes
        to the drain through `sent`; one after it (the database's, marking) is logged
        here, and the result is None."""
        try:
            return await self._round(sent)
        except asyncio.CancelledError:
            if not _cancelled_by_the_library():
                raise  # cancelled itself (a batch abandoned at the stop)
            # aiormq cancels the calls in flight on a connection it gives up (no frame for
            # three heartbeats): the broker failed, nobody asked the relay to stop. Taken
            # for a stop, it ended the relay for good, which then published nothing more.
            lost = BrokerUnavailable("the RabbitMQ connection was lost during the round")
            if not sent.done():
                sent.set_exception(lost)
            else:
                log.warning("relay_batch_failed", error=describe(lost))
            return None
        except Exception as exc:  # noqa: BLE001 - any failure: the rows stay unsent
            if not sent.done():
                sent.set_exception(exc)
            else:
                log.warning("relay_batch_failed", error=describe(exc))
            return None
        finally:
            if not sent.done():
                sent.cancel()  # cancelled itself before sending

    async def _publish_rows(
        self, channel: aiormq.Channel, rows: Sequence[asyncpg.Record]
    ) -> list[asyncio.Future[Any]]:
        """Sends every row in one write; returns a confirm future per row (pipelined: the
        broker confirms while later messages are still arriving)."""
        invalid: dict[int, asyncio.Future[Any]] = {}
        messages: list[OutgoingMessage] = []
        for index, row in enumerate(rows):
            try:
                properties = self._properties(row)
            except Exception as exc:  # noqa: BLE001 - an invalid envelope fails alone
                invalid[index] = _failed_future(InvalidEnvelope(describe(exc)))
                continue
            messages.append(OutgoingMessage(row["routing_key"], row["body"].encode(), properties))
        confirms = iter(await publish_batch(channel, self.exchange, messages) if messages else ())
        return [invalid.get(index) or next(confirms) for index in range(len(rows))]

    async def _outcomes(
        self, rows: Sequence[asyncpg.Record], pending: list[asyncio.Future[Any]]
    ) -> list[Outcome]:
        """Awaits all the confirms together, with one deadline for the whole batch (a
        timer per publish costs more than it buys)."""
        _, late = await asyncio.wait(pending, timeout=self.confirm_timeout)
        for publish in late:
            publish.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return [self._outcome(row, publish) for row, publish in zip(rows, pending, strict=True)]

    def _properties(self, row: asyncpg.Record) -> Properties:
        return event_properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=str(row["event_id"]),
            message_type=row["event_type"],
            app_id=APP_ID,
            timestamp=row["created_at"],  # whole seconds, as AMQP carries it
            headers=stored_envelope_headers(row["attributes"]),
        )

    def _outcome(self, row: asyncpg.Record, publish: asyncio.Future[Any]) -> Outcome:
        if publish.cancelled():
            return Outcome(sent=False, error=f"no confirm within {self.confirm_timeout} s")
        result = publish.exception() or publish.result()
        if isinstance(result, aiormq.spec.Basic.Ack):
            return Outcome(sent=True)
        if isinstance(result, DeliveredMessage):
            reason = f"unroutable: no queue bound for routing key {row['routing_key']!r}"
            return Outcome(sent=False, error=reason, unroutable=True)
        if isinstance(result, aiormq.exceptions.DeliveryError) and isinstance(
            result.frame, aiormq.spec.Basic.Nack
        ):
            # A queue bound for it refused it (full, with x-overflow reject-publish, say);
            # other queues may hold it all the same, so sending it again at once, round
            # after round, would flood them with copies.
            reason = "refused by the broker (Basic.Nack): a queue bound for it is full, say"
            return Outcome(sent=False, error=reason, refused=True)
        if isinstance(result, InvalidEnvelope):
            log.error("event_invalid", event_id=str(row["event_id"]), error=str(result))
            return Outcome(sent=False, error=describe(result), invalid=True)
        if isinstance(result, BaseException):
            return Outcome(sent=False, error=describe(result))
        return Outcome(sent=False, error=f"unexpected confirm {result!r}")

    async def _record_outcomes(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], outcomes: list[Outcome]
    ) -> None:
        await conn.execute(
            queries.outbox_record_outcomes,
            [row["id"] for row in rows],
            [outcome.sent for outcome in outcomes],
            [outcome.error for outcome in outcomes],
            [outcome.deferred for outcome in outcomes],
            self.defer_max,
            self.defer_initial,
        )

    def _account(self, rows: Sequence[asyncpg.Record], outcomes: list[Outcome]) -> BatchResult:
        unroutable = sum(1 for o in outcomes if o.unroutable)
        published = sum(1 for o in outcomes if o.sent)
        failed = len(outcomes) - published - unroutable
        EVENTS_PUBLISHED.inc(published)
        if unroutable:
            EVENTS_UNROUTABLE.inc(unroutable)
            # One line per batch, not per event: with no queue bound every event is
            # returned. Each stays unsent with last_error 'unroutable: ...', deferred.
            returned = [row for row, o in zip(rows, outcomes, strict=True) if o.unroutable]
            log.warning(
                "events_unroutable",
                count=unroutable,
                exchange=self.exchange,
                routing_keys=sorted({row["routing_key"] for row in returned}),
                event_ids=[str(row["event_id"]) for row in returned[:UNROUTABLE_IDS_LOGGED]],
            )
        if failed:
            EVENT_PUBLISH_FAILURES.inc(failed)
            first = next(o.error for o in outcomes if not o.sent and not o.unroutable)
            log.warning("relay_publish_failed", failed=failed, claimed=len(rows), error=first)
        invalid = sum(1 for o in outcomes if o.invalid)
        refused = sum(1 for o in outcomes if o.refused)
        return BatchResult(len(rows), published, unroutable, failed, invalid, refused)

    async def _publisher(self) -> aiormq.Channel:
        """The confirm-mode channel on the Broker's current connection, opened (and the
        exchange declared) after every reconnect."""
        connection = self.broker.connection
        if connection is None or not self.broker.connected:
            raise BrokerUnavailable("RabbitMQ is not connected")
        channel = self._channel
        if channel is None or channel.is_closed or self._channel_connection is not connection:
            await self._close_channel()
            try:
                async with asyncio.timeout(self.confirm_timeout):
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=False
                    )
                    try:
                        await channel.declare_exchange(
                            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                        )
                    except aiormq.exceptions.ChannelPreconditionFailed as exc:
                        # EVENTS_EXCHANGE names an exchange of another kind (not a durable
                        # topic one): no retry can fix that, an operator must.
                        log.error(
                            "relay_exchange_declare_failed",
                            exchange=self.exchange,
                            error=describe(exc),
                        )
                        await channel.close()
                        raise
                    except BaseException:
                        await channel.close()
                        raise
            except TimeoutError:
                # The connection is open (its heartbeats come) but RabbitMQ does not answer
                # on it: another channel on it would not open either. Connect anew.
                self.broker.give_up(
                    connection, f"channel not opened within {self.confirm_timeout} s"
                )
                raise
            self._channel, self._channel_connection = channel, connection
            log.info("relay_channel_open", exchange=self.exchange)
        # The aiormq channel itself: its basic_publish can skip waiting for the socket
        # write (wait=False), which pipelines a batch faster than aio-pika's publish.
        underlay: aiormq.Channel = await channel.get_underlay_channel()
        return underlay

    async def _close_channel(self) -> None:
        channel, self._channel, self._channel_connection = self._channel, None, None
        if channel is not None and not channel.is_closed:
            # Bounded: a broker that does not answer must not hold up shutdown.
            try:
                async with asyncio.timeout(CHANNEL_CLOSE_TIMEOUT):
                    await channel.close()
            except asyncio.CancelledError:
                if not _cancelled_by_the_library():
                    raise
            except Exception:  # noqa: BLE001, S110 - the channel is given up either way
                pass

    # ---- wake-ups ----------------------------------------------------------------------

    def _on_notify(self, *_: object) -> None:
        self.wake()

    async def _listen(self) -> None:
        """LISTEN 'outbox' on a connection of its own, reconnecting with backoff; the
        poll in run() covers the time without one."""
        delay = INITIAL_BACKOFF
        while True:
            try:
                conn = await asyncpg.connect(
                    self.config.database_url, timeout=LISTENER_ANSWER_TIMEOUT
                )
            except Exception as exc:  # noqa: BLE001 - keep trying whatever went wrong
                log.warning("outbox_listen_failed", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            try:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                async with asyncio.timeout(LISTENER_ANSWER_TIMEOUT):
                    await conn.add_listener(LISTEN_CHANNEL, self._on_notify)
                self.wake()  # catch up on whatever was written while nobody listened
                self.listening.set()
                delay = INITIAL_BACKOFF
                while not conn.is_closed():
                    try:
                        async with asyncio.timeout(LISTENER_PING_INTERVAL):
                            await lost.wait()
                    except TimeoutError:
                        async with asyncio.timeout(LISTENER_ANSWER_TIMEOUT):
                            await conn.fetchval(queries.ping)
            except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
                log.warning("outbox_listen_lost", error=describe(exc), retry_in=delay)
                # Not at once: a database that takes connections but refuses LISTEN (a hot
                # standby) would be reconnected to in a tight loop.
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
            finally:
                self.listening.clear()
                conn.terminate()

    # ---- housekeeping and backlog ------------------------------------------------------

    async def housekeeping(self) -> int:
        """Deletes published rows past OUTBOX_RETENTION_SECONDS; returns how many.
        (Expired idempotency records are pruned by the HTTP app: service.idempotency.)"""
        deleted = 0
        async with self.pool.acquire() as conn:
            while True:
                status: str = await conn.execute(
                    queries.outbox_delete_published,
                    float(self.config.outbox_retention_seconds),
                    DELETE_CHUNK,
                )
                count = int(status.rsplit(" ", 1)[-1])
                deleted += count
                if count < DELETE_CHUNK or self.stopping:
                    break
        if deleted:
            log.info("outbox_housekeeping", outbox_deleted=deleted)
        return deleted

    async def _housekeeping_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping or self.stopping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
        try:
            await self.housekeeping()
        except Exception as exc:  # noqa: BLE001 - tried again at the next interval
            log.warning("outbox_housekeeping_failed", error=describe(exc))

    async def refresh_backlog(self) -> tuple[int, float]:
        """Sets the backlog gauges from the outbox; returns (size, oldest age seconds)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(queries.outbox_backlog)
        size, age = int(row["size"]), float(row["oldest_age"])
        OUTBOX_BACKLOG.set(size)
        OUTBOX_OLDEST_AGE.set(age)
        return size, age

    async def _refresh_backlog_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_backlog_refresh:
            return
        self._next_backlog_refresh = now + BACKLOG_REFRESH_INTERVAL
        try:
            size, age = await self.refresh_backlog()
        except Exception as exc:  # noqa: BLE001 - the database may be down; try later
            log.warning("outbox_backlog_unknown", error=describe(exc))
            return
        if size and now >= self._next_backlog_log:
            self._next_backlog_log = now + BACKLOG_LOG_INTERVAL
            log.info(
                "outbox_backlog",
                size=size,
                oldest_age_seconds=round(age, 3),
                broker_connected=self.broker.connected,
            )


def _stop_waits(shutdown_timeout: float, whole: float | None) -> tuple[float, float]:
    """running()'s waits at its stop: before the first cancel, and after each of the two.
    Within `whole` the first wait gives way before the other two, which never go below
    SHORTEST_STEP_SECONDS: a task just cancelled needs a turn of the loop to end."""
    if whole is None:
        return shutdown_timeout, ABANDON_BATCH_AFTER
    first_wait = min(shutdown_timeout, max(0.0, whole - 2 * ABANDON_BATCH_AFTER))
    after_cancel = min(ABANDON_BATCH_AFTER, (whole - first_wait) / 2)
    return first_wait, max(SHORTEST_STEP_SECONDS, after_cancel)


def _succeeded(result: BatchResult | None) -> bool:
    """False when the batch failed (the broker or the database failed us) or nothing in it
    could be sent (with no queue bound at all, every event comes back): back off. Unroutable
    rows, refused messages and invalid envelopes are deferred row by row, so they hold
    nothing else back and are not claimed again at once."""
    if result is None:
        return False
    deferred_failures = result.invalid + result.refused
    return result.failed <= deferred_failures and (result.published > 0 or not result.claimed)


def _cancelled_by_the_library() -> bool:
    """True for a CancelledError that no one asked of the current task: aiormq's, from the
    calls it cancels on a connection it closes."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


def _failed_future(exc: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


async def run_relay_forever(
    config: Config,
    *,
    serving: contextlib.AbstractAsyncContextManager[None] | None = None,
    on_broker: Callable[[Broker], None] | None = None,
) -> None:
    """`order-service relay`: the relay alone, until SIGTERM or SIGINT (after the batch
    in flight), inside `serving` (its probes and metrics) when given; `on_broker` gets its
    broker connection once made (for the readiness probe)."""
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    relay: OutboxRelay | None = None
    stopping = False

    def on_signal() -> None:
        # Handlers go in before anything starts and come out after everything has
        # stopped, so a SIGTERM at any moment is a clean stop.
        nonlocal stopping
        stopping = True
        if relay is not None:
            relay.stop()

    for signum in stop_signals:
        loop.add_signal_handler(signum, on_signal)
    try:
        async with serving if serving is not None else contextlib.nullcontext():
            pool = await create_pool(config)
            broker = Broker(config.amqp_url)
            broker.start()
            if on_broker is not None:
                on_broker(broker)
            relay = OutboxRelay(config, pool, broker)
            if stopping:
                relay.stop()
            log.info(
                "relay_started",
                exchange=config.events_exchange,
                amqp=config.amqp_url_redacted,
                batch_size=config.relay_batch_size,
            )
            try:
                await relay.run()
            finally:
                await broker.close()
                # Bounded: a database that stops answering never answers a close.
                await close_pool(pool)
    finally:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)
