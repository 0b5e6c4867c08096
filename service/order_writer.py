"""Group commit: orders that arrive while others are being written go to PostgreSQL
together, each kind of order (see _groups) in one statement and one transaction.

Each place_order call in a transaction of its own cost about 0.40 ms of PostgreSQL CPU
and 0.15 ms of the service's (asyncpg, the pool, the round trip); written four at a time
they cost 0.29 and 0.08 ms each, sixteen at a time 0.18 and 0.03 (the demo catalog's
orders, 20,000 of each). Most orders of a batch are now written by set-based statements
without a place_order call each, which halves PostgreSQL's share again. No order waits
for a batch to fill: a free writer takes the one order there is, so a lone order is
written at once, as before; batches form only while orders arrive faster than the
writers finish.

A batch's group commits or rolls back as a whole, and its orders are answered only
after the commit. When PostgreSQL refuses a group for something one of its orders did (a
replayed request token, an order id drawn twice, an exhausted coupon, a lost
Idempotency-Key claim, a deadlock with another batch, a statement timeout), nothing of it
was written, and each of its orders is written again alone: each gets its own answer, and
no order is refused for another's fault, with one exception: when an order written alone
times out too, the orders needing the rows it waited for (its coupon, say) get that
error at once rather than a statement timeout each, and after a second timeout all the
rest do. When the database cannot be reached, every order of the batch not answered yet
gets that error (503; nothing of it was written).

When a batch's connection is lost under it (PostgreSQL restarted or terminated it, the
network cut it), its orders not answered yet are written once more on another connection
(`_write_again`): a write cut off before its commit left nothing, and one whose commit
went through while its reply was lost is found by the second write, which PostgreSQL
refuses for the order's id (or waits for, while the first write's transaction is still
open) and which then finds the order under its id, merchant and creation time: that
order is answered as written. So a restart answers neither 503 for an order that was written (and
whose event goes out) nor writes one twice. A timeout is not written again: a database
that stopped answering would hold the second write as long.

While every writer's batch has been in PostgreSQL for `standby_after` (held up: waiting
for a row another transaction holds, most often), a standby writer takes the orders
behind them that need none of the rows those batches lock or wait for; the others wait
for the batch holding their row. A standby's batch held up in turn wakes the next
standby, up to `standbys` of them, so that locks held elsewhere on several rows (a
catalog load rewriting coupons) hold up only the orders needing those rows.

An order has one deadline, `queue_timeout` (DB_ACQUIRE_TIMEOUT) from the moment it is
handed over, for the wait for a writer and the writer's wait for a connection together:
its timer runs until a writer holding a connection takes it, and answers it TimeoutError
(a 503) if that has not happened by then. An order is taken only with a connection in
hand, right before its batch's statement, and from then on no deadline answers it: it is
written and answered by the outcome, so no client is told 503 for an order that then
commits. One whose deadline has passed when its writer gets the connection is answered
then, and not written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import structlog

from service.db import DATABASE_DOWN, connection_lost, forget_pooled_connections
from service.metrics import (
    ORDER_BATCHES_WRITTEN_AGAIN,
    ORDER_BATCHES_WRITTEN_ALONE,
    ORDER_WRITE_BATCH_SIZE,
)
from service.sql import queries

log = structlog.get_logger(__name__)

# place_order's arguments: the order row, its items, its event, and the Idempotency-Key
# scope, key, response status, response body and claim id.
PlaceOrderArgs = tuple[Any, Any, Any, Any, Any, Any, Any, Any]
ROW, ITEMS, EVENT, KEY, BODY = 0, 1, 2, 4, 6
DEADLOCK_ATTEMPTS = 3
# Writes of a batch after the first one's connection was lost (see _write_again).
WRITE_AGAIN_ATTEMPTS = 3
# A batch still in PostgreSQL this long after it started is held up (a batch of the
# benchmark's load takes 5-20 ms): a standby writer starts on the orders behind it.
STANDBY_AFTER = 0.25
# What running()'s end keeps, under a deadline, for its cancelled batches to roll back
# (asyncpg cancels a statement over a new connection: a few ms here, more to a remote
# database).
ROLLBACK_SECONDS = 0.25


@dataclass(slots=True)
class _Pending:
    args: PlaceOrderArgs
    result: asyncio.Future[str | None]
    # The order's deadline (expiry.when()): fails it with TimeoutError unless a writer
    # holding a connection has taken it by then.
    expiry: asyncio.TimerHandle


class OrderWriter:
    """Writes place_order calls, batching those that queue up. `place_order(args)` answers
    as `conn.fetchval(queries.place_order, *args)` would, PostgreSQL's errors included."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        writers: int,
        max_batch: int,
        queue_timeout: float,
        drain_timeout: float = 10.0,
        standby_after: float | None = None,
        standbys: int = 1,
    ) -> None:
        self._pool = pool
        self._writers = writers
        # With a time, `standbys` more writers stand by. One takes orders only while every
        # writer, and every standby already out, has been in its batch longer than that
        # (held up: a row lock another transaction holds, say), so held-up batches do not
        # hold up every order behind them. The rest of the time a single batch in
        # PostgreSQL leaves the event loop its core. Each standby out holds a connection.
        self._standby_after = standby_after
        self._standbys = standbys if standby_after is not None else 0
        self._in_batch = 0  # writers (not standbys) in a batch
        self._standbys_out = 0  # standbys taking a batch or writing it
        self._held_up = asyncio.Event()
        # The rows that batches held up in PostgreSQL lock (or wait for), one entry per such
        # batch: the standby leaves orders needing one of them for after that batch, which
        # would otherwise hold its batch up too, and every order behind it with no writer
        # left. Orders left aside go back to the queue when the batch holding them ends.
        self._held_rows: dict[int, frozenset[Hashable]] = {}
        self._set_aside: list[_Pending] = []
        self._max_batch = max_batch
        # An order no writer holding a connection has taken within this long of being
        # handed over gets TimeoutError (a 503) and is not written, however the time went
        # (queued for a writer, or its writer waiting for a connection): the wait a request
        # had for a pool connection before batching.
        self._queue_timeout = queue_timeout
        self._drain_timeout = drain_timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        # Futures of the orders queued or being written whose request still waits.
        self._unanswered: set[asyncio.Future[str | None]] = set()
        # A writer that running()'s end left in its batch (cancelled, never rolled back).
        self.batch_abandoned = False

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def queued(self) -> int:
        """Orders waiting for a writer."""
        return self._queue.qsize()

    @property
    def accepting(self) -> bool:
        """Orders are queued for the writers (False before running() and once it ends)."""
        return self._accepting

    async def place_order(self, args: PlaceOrderArgs) -> str | None:
        if not self._accepting:
            # Not running (a command, a test) or shutting down: written alone.
            async with self._pool.acquire() as conn:
                reference: str | None = await conn.fetchval(queries.place_order, *args)
                return reference
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._unanswered.add(future)
        future.add_done_callback(self._unanswered.discard)
        expiry = loop.call_later(self._queue_timeout, _expire, future)
        self._queue.put_nowait(_Pending(args, future, expiry))
        # A request cancelled before a writer holding a connection takes its order (queued,
        # or its writer waiting for the connection) cancels the future, and the order is
        # skipped. Once taken, it is written and the answer dropped (unless its batch is
        # refused and written one by one: then it is skipped too).
        return await future

    @asynccontextmanager
    async def running(
        self, *, stop_within: Callable[[], float] | None = None
    ) -> AsyncIterator[OrderWriter]:
        """Writes for the body; on exit answers the orders still waiting, within the
        drain timeout, then cancels the writers. `stop_within`, asked once when the stop
        starts, bounds both: the wait for the cancelled batches to roll back keeps
        ROLLBACK_SECONDS of it at least."""
        self._tasks = [
            asyncio.create_task(self._write_forever(), name=f"order-writer-{n}")
            for n in range(self._writers)
        ]
        self._tasks += [
            asyncio.create_task(self._stand_by(), name=f"order-writer-standby-{n}")
            for n in range(self._standbys)
        ]
        self._accepting = True
        try:
            yield self
        finally:
            self._accepting = False
            loop = asyncio.get_running_loop()
            stop_by = None if stop_within is None else loop.time() + stop_within()
            if self._unanswered:
                # Every order whose request still waits is written and answered (each
                # batch is bounded by the acquire and statement timeouts; the limit only
                # guards against a hung writer). A batch whose requests were all cut off
                # (the shutdown timeout cancels them) is not waited for: cancelled below,
                # it rolls back.
                drain = self._drain_timeout
                if stop_by is not None:
                    drain = max(0.0, min(drain, stop_by - ROLLBACK_SECONDS - loop.time()))
                _, waiting = await asyncio.wait(set(self._unanswered), timeout=drain)
                if waiting:
                    log.error("order_writer_stop_timed_out", unanswered=len(waiting))
            for task in self._tasks:
                task.cancel()
            # A cancelled batch rolls back, which a database that stops answering never
            # answers: with a deadline its writer is left to the pool's close.
            rollback = None if stop_by is None else max(ROLLBACK_SECONDS, stop_by - loop.time())
            _, stuck = await asyncio.wait(self._tasks, timeout=rollback)
            if stuck:
                self.batch_abandoned = True
                log.error("order_writer_did_not_stop", writers=len(stuck))
            await asyncio.gather(*(set(self._tasks) - stuck), return_exceptions=True)
            self._tasks = []
            for future in list(self._unanswered):
                _fail(future, TimeoutError("shut down before written"))

    async def _write_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            self._in_batch += 1
            try:
                await self._write_watched(batch)
            finally:
                self._in_batch -= 1

    async def _stand_by(self) -> None:
        while True:
            # Every standby waiting is woken; the first out makes the others wait again.
            while not self._standby_wanted():
                self._held_up.clear()
                await self._held_up.wait()
            self._standbys_out += 1
            try:
                # Once it has taken a batch it writes it, even if the writers are free
                # again by then: at most one batch more in PostgreSQL per held-up one.
                await self._write_watched(await self._next_batch(avoid_held_rows=True))
            finally:
                self._standbys_out -= 1

    def _standby_wanted(self) -> bool:
        """Every writer and every standby out is in a batch held up: nobody is left to
        take the orders behind them."""
        return (
            self._in_batch == self._writers
            and len(self._held_rows) == self._writers + self._standbys_out
        )

    async def _write_watched(self, batch: list[_Pending]) -> None:
        """_write_guarded, and the batch's rows recorded as held once it has been in
        PostgreSQL for standby_after."""
        held_up = (
            asyncio.get_running_loop().call_later(self._standby_after, self._check_held_up, batch)
            if self._standby_after is not None
            else None
        )
        try:
            await self._write_guarded(batch)
        finally:
            if held_up is not None:
                held_up.cancel()
            self._release_held_rows(batch)

    def _check_held_up(self, batch: list[_Pending]) -> None:
        self._held_rows[id(batch)] = frozenset(row for p in batch for row in _rows_locked(p))
        if self._standby_wanted():
            standbys_left = self._standbys - self._standbys_out
            log.warning(
                "order_writers_held_up",
                seconds=self._standby_after,
                held_batches=len(self._held_rows),
                standbys_left=standbys_left,
                queued=self.queued,
            )
            if standbys_left:
                self._held_up.set()

    def _release_held_rows(self, batch: list[_Pending]) -> None:
        if self._held_rows.pop(id(batch), None) is None:
            return
        # Back in line, with their deadlines still running (a wait for a writer).
        for pending in self._set_aside:
            self._queue.put_nowait(pending)
        self._set_aside.clear()

    async def _next_batch(self, *, avoid_held_rows: bool = False) -> list[_Pending]:
        batch: list[_Pending] = []
        while not batch or (len(batch) < self._max_batch and not self._queue.empty()):
            pending = self._queue.get_nowait() if batch else await self._queue.get()
            if avoid_held_rows and self._needs_a_held_row(pending):
                self._set_aside.append(pending)
            else:
                batch.append(pending)
        return batch

    def _needs_a_held_row(self, pending: _Pending) -> bool:
        rows = _rows_locked(pending)
        return any(not held.isdisjoint(rows) for held in self._held_rows.values())

    async def _write_guarded(self, batch: list[_Pending]) -> None:
        try:
            await self._write(batch)
        except Exception:
            # _write answers every order itself; this is a bug's last line of defence,
            # and the writer must outlive it.
            log.exception("order_writer_failed", orders=len(batch))
            for pending in batch:
                _fail(pending.result, RuntimeError("order writer failed"))

    async def _write(self, handed: list[_Pending]) -> None:
        """Writes the orders `handed` to this writer that are still wanted once it holds a
        connection. Their deadlines run on while it waits for one: each order answered
        then (timed out, or cancelled by its request) is left out."""
        loop = asyncio.get_running_loop()
        if not _any_wanted(handed, loop.time()):
            # No connection for orders already answered, or past their deadline.
            _take(handed, loop.time())
            return
        lost: BaseException | None = None
        batch: list[_Pending] = []
        try:
            # The pool's own wait (DB_ACQUIRE_TIMEOUT from now, in the service) outlasts
            # every deadline of the batch: the deadlines answer the orders meanwhile.
            async with self._pool.acquire() as conn:
                # Nothing is awaited between taking the orders and writing them: no
                # deadline can answer an order once taken.
                batch = _take(handed, loop.time())
                if not batch:
                    return
                ORDER_WRITE_BATCH_SIZE.observe(len(batch))
                lost = await _write_batch(self._pool, conn, batch, in_doubt=False)
        except DATABASE_DOWN as exc:
            if lost is None:
                # No connection (or the write failed: its orders were answered). Each
                # order handed over and not answered yet gets the error.
                for pending in handed:
                    pending.expiry.cancel()
                    _fail(pending.result, exc)
                return
        if lost is not None:
            await self._write_again(batch, lost)

    async def _write_again(self, batch: list[_Pending], lost: BaseException) -> None:
        """The orders of `batch` not answered when its connection was lost, written once
        more on a new connection, and again while that one is lost too, as long as the
        last loss was within an order's deadline (queue_timeout) of the first; an order a
        lost write had committed is answered as written (_answered_as_written_before)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._queue_timeout
        for attempt in range(1, WRITE_AGAIN_ATTEMPTS + 1):
            batch = [pending for pending in batch if not pending.result.done()]
            time_left = give_up_at - loop.time()
            if not batch or time_left <= 0:
                break
            ORDER_BATCHES_WRITTEN_AGAIN.inc()
            log.warning(
                "order_batch_written_again", orders=len(batch), attempt=attempt, error=repr(lost)
            )
            lost_again: BaseException | None = None
            try:
                async with self._pool.acquire(timeout=time_left) as conn:
                    lost_again = await _write_batch(self._pool, conn, batch, in_doubt=True)
            except DATABASE_DOWN as exc:
                if lost_again is None:
                    for pending in batch:
                        _fail(pending.result, exc)
                    return
            if lost_again is None:
                return
            lost = lost_again
        for pending in batch:
            _fail(pending.result, lost)


async def _write_batch(
    pool: asyncpg.Pool, conn: asyncpg.Connection, batch: list[_Pending], *, in_doubt: bool
) -> BaseException | None:
    """Writes the batch's groups on `conn` (of `pool`) and answers their orders. Returns
    the error of a connection lost under them, their orders unanswered but for groups
    written before; any other failure to reach the database is every order's answer, and
    raised."""
    timeouts = _Timeouts(in_doubt=in_doubt)
    try:
        for group in _groups(batch):
            await _write_group(conn, group, timeouts)
    except DATABASE_DOWN as exc:
        if connection_lost(exc):
            await forget_pooled_connections(pool, conn)
            return exc
        # Answered before the connection goes back to the pool: giving back one whose
        # query timed out on a database that stopped answering takes as long as the query
        # did. (A group written before is answered already, and keeps its answer.)
        for pending in batch:
            _fail(pending.result, exc)
        raise
    return None


@dataclass(slots=True)
class _Timeouts:
    """A batch's statement timeouts so far. The rows an order timed out waiting for
    alone (most likely): the orders needing one of them get that answer at once rather
    than a statement timeout each. A second timeout alone, or one of an order needing no
    such row, is a database too slow for any order: the rest get it at once."""

    group_timed_out: bool = False
    alone: asyncpg.QueryCanceledError | None = None
    waited_for: set[Hashable] = field(default_factory=set)
    gave_up: bool = False
    # The batch is written again after its connection was lost: an order refused may be
    # one the lost write committed.
    in_doubt: bool = False


async def _write_group(conn: asyncpg.Connection, group: _Group, timeouts: _Timeouts) -> None:
    """Writes the group's orders in one transaction and answers them; if PostgreSQL
    refuses it for one of them, each is written alone. After a statement timeout in
    the batch, its later groups are written order by order, so that a database too
    slow for any order costs a batch three timeouts at most, however many groups it
    has: the group's, and two of orders alone (see _Timeouts)."""
    if len(group.orders) == 1 or timeouts.group_timed_out:
        for pending in group.orders:
            await _write_alone_in_batch(conn, pending, timeouts)
        return
    try:
        references = await group.write(conn, group.orders)
    except Exception as exc:
        if not _refused_for_an_order(exc):
            raise
        timeouts.group_timed_out = isinstance(exc, asyncpg.QueryCanceledError)
        ORDER_BATCHES_WRITTEN_ALONE.inc()
        log.info("order_batch_written_alone", orders=len(group.orders), error=repr(exc))
        for pending in group.orders:
            await _write_alone_in_batch(conn, pending, timeouts)
        return
    for pending, reference in zip(group.orders, references, strict=True):
        _answer(pending.result, reference)


async def _write_alone_in_batch(
    conn: asyncpg.Connection, pending: _Pending, timeouts: _Timeouts
) -> None:
    if pending.result.done():
        # Its request is gone (cut off at shutdown): not written after all.
        return
    rows = _rows_locked(pending)
    if timeouts.alone is not None and (
        timeouts.gave_up or not timeouts.waited_for.isdisjoint(rows)
    ):
        _fail(pending.result, timeouts.alone)
        return
    try:
        await _write_alone(conn, pending, in_doubt=timeouts.in_doubt)
    except asyncpg.QueryCanceledError as exc:
        # Timed out waiting for a row the lost write held (its transaction still open) or
        # another transaction holds: stored all the same when the lost write committed.
        if await _answered_as_written_before(conn, pending, in_doubt=timeouts.in_doubt):
            return
        _fail(pending.result, exc)
        timeouts.gave_up = timeouts.alone is not None or not rows
        timeouts.alone = exc
        timeouts.waited_for.update(rows)


async def _write_alone(conn: asyncpg.Connection, pending: _Pending, *, in_doubt: bool) -> None:
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            _answer(pending.result, await conn.fetchval(queries.place_order, *pending.args))
            return
        except asyncpg.DeadlockDetectedError as exc:
            # Chosen as the victim against a batch (an order waiting on a replayed token
            # the batch wrote, say): rolled back whole, so written again.
            if attempt == DEADLOCK_ATTEMPTS and not await _answered_as_written_before(
                conn, pending, in_doubt=in_doubt
            ):
                _fail(pending.result, exc)
        except DATABASE_DOWN:
            raise
        except asyncpg.PostgresError as exc:
            # Refused for its id or request token, or for the coupon it redeemed or the
            # Idempotency-Key it completed: by the lost write, when that one committed.
            if not await _answered_as_written_before(conn, pending, in_doubt=in_doubt):
                _fail(pending.result, exc)
            return


async def _answered_as_written_before(
    conn: asyncpg.Connection, pending: _Pending, *, in_doubt: bool
) -> bool:
    """Whether the order, refused or timed out on its write again (`in_doubt`), was stored
    by the write whose connection was lost, and is now answered so."""
    if not in_doubt:
        return False
    row = pending.args[ROW]
    try:
        # Under its id, merchant and creation time: an order id drawn by another order
        # before is not this order's.
        found = await conn.fetchrow(
            queries.order_written_before, row["id"], row["merchant_id"], row["created_at"]
        )
    except DATABASE_DOWN:
        raise
    except asyncpg.PostgresError:
        # PostgreSQL refuses to tell: the order's own refusal stands.
        return False
    if found is None:
        return False
    _answer(pending.result, found["reference"])
    return True


def _any_wanted(handed: list[_Pending], now: float) -> bool:
    """Some order still waits for its answer and has time left."""
    return any(not pending.result.done() and pending.expiry.when() > now for pending in handed)


def _take(handed: list[_Pending], now: float) -> list[_Pending]:
    """The orders to write now, taken (their deadline no longer runs): not cancelled by
    their request, not past their deadline (answered here if their timer has not run yet,
    as with an event loop running late); in the order of the rows they lock, so that two
    batches do not wait for each other's."""
    taken = []
    for pending in handed:
        pending.expiry.cancel()
        if pending.result.done():
            continue
        if pending.expiry.when() <= now:
            _expire(pending.result)
            continue
        taken.append(pending)
    taken.sort(key=_lock_order)
    return taken


def _refused_for_an_order(exc: Exception) -> bool:
    """PostgreSQL refused a batch for what one of its orders did, including the statement
    timeout (most often one order waiting for a row another transaction holds, its
    coupon), rather than for being out of reach."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, DATABASE_DOWN)


# A future answers once: a request cancelled (or expired) in the meantime keeps its answer.
def _answer(future: asyncio.Future[str | None], reference: str | None) -> None:
    if not future.done():
        future.set_result(reference)


def _fail(future: asyncio.Future[str | None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _expire(future: asyncio.Future[str | None]) -> None:
    _fail(future, TimeoutError("no order writer with a connection took the order in time"))


def _rows_locked(pending: _Pending) -> tuple[Hashable, ...]:
    """The rows besides its own that an order's statement may wait for: its coupon's, its
    customer's (as in _lock_order), and the replay-protection index entry of its request
    token (a replay waits for the first's transaction)."""
    row = pending.args[ROW]
    merchant = row["merchant_id"]
    rows: list[Hashable] = []
    if row.get("coupon_id"):
        rows.append(("coupon", row["coupon_id"]))
    if row.get("customer_account"):
        rows.append(("customer", merchant, row["customer_account"]))
    if row.get("request_token"):
        rows.append(("request_token", merchant, row["request_token"]))
    return tuple(rows)


def _lock_order(pending: _Pending) -> tuple[int, int, str]:
    """The rows an order locks besides its own: its coupon (counted; initials orders) or
    its customer (upserted; me_order orders), never both. Every batch takes customers
    first, then coupons, each in key order."""
    row = pending.args[ROW]
    return row.get("coupon_id") or 0, row["merchant_id"], row.get("customer_account") or ""


References = list[str | None]


async def _write_plain(conn: asyncpg.Connection, orders: list[_Pending]) -> References:
    """Orders needing none of place_order's steps but its inserts: no coupon to count, no
    Payway-style reference or customer, no Idempotency-Key claim to complete."""
    await conn.execute(
        queries.place_plain_orders,
        [pending.args[ROW] for pending in orders],
        [item for pending in orders for item in pending.args[ITEMS]],
        [{**pending.args[EVENT], "aggregate_id": pending.args[ROW]["id"]} for pending in orders],
    )
    return [None] * len(orders)


async def _write_customer_orders(conn: asyncpg.Connection, orders: list[_Pending]) -> References:
    """Payway-style orders with no coupon or Idempotency-Key, each of another customer."""
    entries = [(pending.args[ROW], pending.args[ITEMS], pending.args[EVENT]) for pending in orders]
    return [row["reference"] for row in await conn.fetch(queries.place_customer_orders, entries)]


async def _write_through_place_order(
    conn: asyncpg.Connection, orders: list[_Pending]
) -> References:
    entries = [_batch_entry(pending.args) for pending in orders]
    return [row["reference"] for row in await conn.fetch(queries.place_orders, entries)]


@dataclass(slots=True)
class _Group:
    """Orders of a batch written together by one statement."""

    write: Callable[[asyncpg.Connection, list[_Pending]], Awaitable[References]]
    orders: list[_Pending]


def _groups(batch: list[_Pending]) -> list[_Group]:
    """The batch as written, in this order: the orders that need only inserts; the
    Payway-style orders whose only other steps are their reference and their customer,
    one per customer; then the rest through place_order (coupons, Idempotency-Keys, a
    customer's second order of the batch, which must see what the first wrote). A group
    keeps the batch's lock order. The first two write without a plpgsql call per order,
    at about half PostgreSQL's CPU per order (why: sql/queries/orders.sql)."""
    plain: list[_Pending] = []
    customers: list[_Pending] = []
    rest: list[_Pending] = []
    seen: set[tuple[int, str]] = set()
    for pending in batch:
        row = pending.args[ROW]
        account = row.get("customer_account")
        customer = (row["merchant_id"], account) if account else None
        if pending.args[KEY] is not None or row.get("coupon_id") is not None:
            rest.append(pending)
        elif row["family"] != "me_order":
            plain.append(pending)
        elif customer is not None and customer not in seen:
            customers.append(pending)
        else:
            rest.append(pending)
        if customer is not None:
            seen.add(customer)
    written_by = (
        (_write_plain, plain),
        (_write_customer_orders, customers),
        (_write_through_place_order, rest),
    )
    return [_Group(write, orders) for write, orders in written_by if orders]


def _batch_entry(args: PlaceOrderArgs) -> list[Any]:
    """One order of a batch as place_orders reads it. The stored Idempotency-Key response
    body goes as its JSON text: as a jsonb value its keys would be sorted."""
    entry = list(args)
    if entry[BODY] is not None:
        entry[BODY] = orjson.dumps(entry[BODY]).decode()
    return entry
