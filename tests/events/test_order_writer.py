"""Group commit (service/order_writer.py): orders waiting together are written in one
transaction, one refused order fails none of the others, and no order is lost or written
against its request's wishes (cancelled, timed out) or left behind at shutdown. An order
has one deadline for the wait for a writer and the writer's wait for a connection."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from service.app import standby_writers
from service.config import Config
from service.db import create_pool
from service.domain.identifiers import new_order_id
from service.errors import ServiceUnavailable
from service.order_store import PreparedOrder, write_order
from service.order_writer import OrderWriter, PlaceOrderArgs
from service.sql import queries
from tests.events.conftest import prepared_order
from tests.support.locks import until_lock_waits
from tests.support.tcp_proxy import TcpProxy

ALONE_BATCHES = "order_service_order_batches_written_alone_total"
# An order's deadline in the timing tests, and what it may be late by on a busy machine
# (a wait for a writer and then for a connection, each this long, would be 0.5 s late).
DEADLINE = 1.0
LATE_BY_AT_MOST = 0.3


def args_of(
    order: PreparedOrder, claim: tuple[str, str, uuid.UUID] | None = None
) -> PlaceOrderArgs:
    scope, key, claim_id = claim if claim else (None, None, None)
    body = order.response_body if claim else None
    return (order.row, order.items, order.event, scope, key, 200, body, claim_id)


async def orders_of(db: asyncpg.Connection, count: int, config: Config) -> list[PreparedOrder]:
    return [await prepared_order(db, config) for _ in range(count)]


async def with_new_coupon(db: asyncpg.Connection, order: PreparedOrder) -> int:
    """A new coupon of the order's merchant, counted by the order; its id (a test holds its
    row to hold the order's statement up)."""
    coupon = f"HELD{uuid.uuid4().hex[:8].upper()}"
    coupon_id: int = await db.fetchval(
        "INSERT INTO coupons (merchant_id, code, percent_off) VALUES ($1, $2, 10) RETURNING id",
        order.row["merchant_id"],
        coupon,
    )
    order.row.update(coupon_id=coupon_id, coupon_code=coupon)
    return coupon_id


@asynccontextmanager
async def held_up_write(
    db: asyncpg.Connection, writer: OrderWriter, order: PreparedOrder, coupon_id: int
) -> AsyncIterator[asyncio.Task[str | None]]:
    """`order` handed to `writer` while its coupon's row is held here: its statement waits
    for the row until the block ends, and is then written (answered None)."""
    async with db.transaction():
        await db.execute("SELECT 1 FROM coupons WHERE id = $1 FOR UPDATE", coupon_id)
        writing = asyncio.create_task(writer.place_order(args_of(order)))
        await until_lock_waits(db, 1)
        yield writing
    assert await writing is None


async def transactions_of(db: asyncpg.Connection, orders: list[PreparedOrder]) -> int:
    """How many transactions wrote these orders (rows one transaction inserted share xmin)."""
    ids = [order.row["id"] for order in orders]
    count: int = await db.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM orders WHERE id = ANY($1::text[])", ids
    )
    return count


async def stored(db: asyncpg.Connection, orders: list[PreparedOrder]) -> set[str]:
    ids = [order.row["id"] for order in orders]
    rows = await db.fetch("SELECT id FROM orders WHERE id = ANY($1::text[])", ids)
    return {row["id"] for row in rows}


async def write_at_once(
    pool: asyncpg.Pool, orders: list[PreparedOrder], max_batch: int = 32
) -> list[Any]:
    """The orders handed to one writer at once (all queued before the writer task runs
    again); each one's answer, or its exception."""
    writer = OrderWriter(pool, writers=1, max_batch=max_batch, queue_timeout=5.0)
    async with writer.running():
        return await asyncio.gather(
            *(writer.place_order(args_of(order)) for order in orders), return_exceptions=True
        )


@asynccontextmanager
async def stuck_writer(
    pool: asyncpg.Pool, first: PreparedOrder, *, queue_timeout: float
) -> AsyncIterator[OrderWriter]:
    """A running writer that holds `first` and waits for the pool's only connection, held
    here until the block ends; `first` is then written (its deadline, `queue_timeout`,
    must not pass before)."""
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=queue_timeout)
    async with writer.running():
        async with pool.acquire():
            written = asyncio.create_task(writer.place_order(args_of(first)))
            await until(lambda: writer_is_waiting(pool))
            yield writer
        assert await written is None


@pytest.fixture
async def small_pool(config: Config) -> AsyncIterator[asyncpg.Pool]:
    """One connection, so that a test holding it holds up the writer."""
    created = await create_pool(replace(config, db_pool_max=1, db_acquire_timeout=10.0))
    yield created
    await created.close()


async def test_orders_waiting_together_are_written_in_one_transaction(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 8, config)
    references = await write_at_once(pool, orders)
    assert references == [None] * 8
    assert await stored(db, orders) == {order.row["id"] for order in orders}
    assert await transactions_of(db, orders) == 1
    events = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::text[])",
        [order.row["id"] for order in orders],
    )
    assert events == 8


async def test_a_batch_is_at_most_max_batch_orders(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 6, config)
    await write_at_once(pool, orders, max_batch=2)
    assert await transactions_of(db, orders) == 3


async def test_one_refused_order_fails_none_of_the_others(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 5, config)
    # The same signed request twice: the second is a replay, refused by its token.
    for order in orders[1:3]:
        order.row["request_token"] = "token-sent-twice"
    alone_before = REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0
    results = await write_at_once(pool, orders)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], asyncpg.UniqueViolationError)
    assert refused[0].constraint_name == "orders_request_token_key"
    written = await stored(db, orders)
    assert len(written) == 4
    assert {orders[0].row["id"], orders[3].row["id"], orders[4].row["id"]} <= written
    assert (REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0) == alone_before + 1


def twin_of(order: PreparedOrder, renamed: dict[str, str] | None = None) -> PreparedOrder:
    """The same order under a new order id and event id (and `renamed` text replaced)."""
    renamed = {
        order.row["id"]: new_order_id(),
        str(order.event["event_id"]): str(uuid.uuid4()),
        **(renamed or {}),
    }
    text = orjson.dumps((order.row, order.items, order.event)).decode()
    for old, new in renamed.items():
        text = text.replace(old, new)
    row, items, event = orjson.loads(text)
    return PreparedOrder(row, items, event, order.response_status, order.response_body)


async def stored_as_written(db: asyncpg.Connection, order: PreparedOrder) -> str:
    """Everything stored for the order (row, items, event) as JSON, its ids replaced by
    placeholders and without the outbox row's own id and transaction time, so that an
    order and its twin compare equal."""
    text: str = await db.fetchval(
        """SELECT jsonb_build_object(
                    'order', (SELECT to_jsonb(o) FROM orders o WHERE o.id = $1),
                    'items', (SELECT jsonb_agg(to_jsonb(i) ORDER BY i.position)
                                FROM order_items i WHERE i.order_id = $1),
                    'event', (SELECT to_jsonb(e) - 'id' - 'created_at'
                                FROM outbox e WHERE e.aggregate_id = $1)
                  )::text""",
        order.row["id"],
    )
    return text.replace(order.row["id"], "ORDER").replace(str(order.event["event_id"]), "EVENT")


async def test_plain_orders_written_together_store_what_place_order_stores(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # Orders with no coupon, customer or Idempotency-Key go in one statement of inserts
    # (place_plain_orders) instead of place_order each: the same rows either way.
    metadata = {"campaign": "winter", "nested": {"b": [1, 2.5, None], "a": "ü"}}
    orders = [await prepared_order(db, config, metadata=metadata) for _ in range(4)]
    orders[1].row.update(buyer_ip="2001:db8::2", request_token=f"token-{orders[1].row['id']}")
    twins = [twin_of(order) for order in orders]
    assert await write_at_once(pool, orders) == [None] * 4
    assert await transactions_of(db, orders) == 1
    for twin in twins:
        await db.fetchval(queries.place_order, *args_of(twin))
    for order, twin in zip(orders, twins, strict=True):
        assert await stored_as_written(db, order) == await stored_as_written(db, twin)
    # The relay sends events in outbox id order: the batch's, in the order handed over.
    sent_order = await db.fetch(
        "SELECT aggregate_id FROM outbox WHERE aggregate_id = ANY($1::text[]) ORDER BY id",
        [order.row["id"] for order in orders],
    )
    assert [row["aggregate_id"] for row in sent_order] == [order.row["id"] for order in orders]


async def test_a_batch_writes_each_kind_of_order_together(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # Plain orders in one statement, the customers' orders (one each) in another, and
    # the rest through place_order: here one order with a coupon, written alone.
    tag = uuid.uuid4().hex[:8]
    plain = await orders_of(db, 3, config)
    customers = [await customer_order(db, config, f"mixed-{tag}-{n}") for n in range(2)]
    with_coupon = await prepared_order(db, config)
    coupon_id = await with_new_coupon(db, with_coupon)
    orders = [plain[0], customers[0], plain[1], with_coupon, plain[2], customers[1]]
    results = await write_at_once(pool, orders)
    # Each answer goes to its own order: a reference for each me_order order, None else.
    assert [isinstance(result, str) for result in results] == [
        order in customers for order in orders
    ], results
    assert len(set(results[1::4])) == 2
    assert await stored(db, orders) == {order.row["id"] for order in orders}
    assert await transactions_of(db, plain) == 1
    assert await transactions_of(db, customers) == 1
    assert await transactions_of(db, orders) == 3
    redeemed = await db.fetchval("SELECT times_redeemed FROM coupons WHERE id = $1", coupon_id)
    assert redeemed == 1


ADDRESS = {"street": "Storgatan 1", "postalCode": "111 22", "city": "Stockholm"}
DEFAULT_ADDRESS = {"street": "Default 2", "postalCode": "222 33", "city": "Uppsala"}


async def known_customer(db: asyncpg.Connection, account: str) -> None:
    merchant_id = await db.fetchval("SELECT id FROM merchants WHERE code = 'eyezy'")
    await db.execute(
        "INSERT INTO customers (merchant_id, account, default_address) VALUES ($1, $2, $3)",
        merchant_id,
        account,
        DEFAULT_ADDRESS,
    )


async def test_customer_orders_written_together_store_what_place_order_stores(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # Three customers: a known one with a default address and none given, a new one
    # giving an address, a new one giving none. Their twins' customers (the same, under
    # another tag) are in the same states.
    tag, twin_tag = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    for known in (f"known-{tag}", f"known-{twin_tag}"):
        await known_customer(db, known)
    orders = [
        await customer_order(db, config, f"{state}-{tag}") for state in ("known", "new", "bare")
    ]
    orders[1].row["details"] = {"address": ADDRESS, "language": "sv-SE"}
    twins = [twin_of(order, {tag: twin_tag}) for order in orders]
    references = await write_at_once(pool, orders)
    assert await transactions_of(db, orders) == 1
    twin_references = [await db.fetchval(queries.place_order, *args_of(t)) for t in twins]
    for order, twin, reference, twin_reference in zip(
        orders, twins, references, twin_references, strict=True
    ):
        ours = await stored_as_written(db, order)
        theirs = await stored_as_written(db, twin)
        assert reference in ours and twin_reference in theirs
        assert ours.replace(reference, "REF").replace(tag, "TAG") == theirs.replace(
            twin_reference, "REF"
        ).replace(twin_tag, "TAG")
    addresses = await db.fetch(
        "SELECT account, default_address FROM customers WHERE account = ANY($1::text[])",
        [order.row["customer_account"] for order in orders],
    )
    assert {row["account"]: row["default_address"] for row in addresses} == {
        f"known-{tag}": DEFAULT_ADDRESS,
        f"new-{tag}": ADDRESS,
        f"bare-{tag}": None,
    }


async def test_one_refused_customer_order_fails_none_of_the_others(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    tag = uuid.uuid4().hex[:8]
    orders = [await customer_order(db, config, f"refused-{tag}-{n}") for n in range(3)]
    taken = (await write_at_once(pool, [await customer_order(db, config, f"first-{tag}")]))[0]
    assert isinstance(taken, str)
    # An order id drawn twice: the middle order's id is one already stored.
    existing = await db.fetchval("SELECT id FROM orders WHERE reference = $1", taken)
    orders[1].row["id"] = existing
    alone_before = REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0
    results = await write_at_once(pool, orders)
    assert isinstance(results[1], asyncpg.UniqueViolationError), results
    assert results[1].constraint_name == "orders_pkey"
    assert isinstance(results[0], str) and isinstance(results[2], str), results
    assert (REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0) == alone_before + 1
    assert await stored(db, [orders[0], orders[2]]) == {orders[0].row["id"], orders[2].row["id"]}


async def test_customer_orders_written_together_draw_their_references_in_batch_order(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    tag = uuid.uuid4().hex[:8]
    orders = [await customer_order(db, config, f"ordered-{tag}-{n:02d}") for n in range(12)]
    references = await write_at_once(pool, orders)
    assert await transactions_of(db, orders) == 1
    numbers = [int(str(reference).rsplit("-", 1)[1]) for reference in references]
    assert numbers == sorted(numbers), numbers


async def test_a_customers_second_order_in_a_batch_sees_what_the_first_wrote(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # The first gives an address, the second none: the second is written after the
    # first (through place_order) and gets the address the first made the default.
    account = f"twice-{uuid.uuid4().hex[:8]}"
    first, second = [await customer_order(db, config, account) for _ in range(2)]
    first.row["details"] = {"address": ADDRESS}
    alone_before = REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0
    references = await write_at_once(pool, [first, second])
    # Not by a refused batch written again order by order.
    assert (REGISTRY.get_sample_value(ALONE_BATCHES) or 0.0) == alone_before
    assert all(isinstance(reference, str) for reference in references), references
    assert await transactions_of(db, [first, second]) == 2
    for order in (first, second):
        details = await db.fetchval("SELECT details FROM orders WHERE id = $1", order.row["id"])
        assert details["address"] == ADDRESS
        payload = await db.fetchval(
            "SELECT payload FROM outbox WHERE aggregate_id = $1", order.row["id"]
        )
        assert payload["data"]["order"]["customer"]["address"] == ADDRESS


# The statement timeout of the tests whose orders wait it out.
STATEMENT_TIMEOUT = 1.0


async def write_at_once_with_coupons_held(
    db: asyncpg.Connection, config: Config, orders: list[PreparedOrder], held: list[int]
) -> tuple[list[Any], float]:
    """write_at_once() of `orders` while these coupons' rows are held here, with a pool
    of STATEMENT_TIMEOUT: each order's answer, and the seconds it all took."""
    timeout_ms = int(STATEMENT_TIMEOUT * 1000)
    pool = await create_pool(replace(config, db_statement_timeout_ms=timeout_ms))
    try:
        async with db.transaction():
            await db.execute("SELECT 1 FROM coupons WHERE id = ANY($1::bigint[]) FOR UPDATE", held)
            started = time.monotonic()
            results = await write_at_once(pool, orders)
            return results, time.monotonic() - started
    finally:
        await pool.close()


async def test_orders_waiting_out_the_statement_timeout_fail_alone(
    db: asyncpg.Connection, config: Config
) -> None:
    # Two orders of the batch count a coupon whose row another transaction holds: the
    # batch's statement times out; the others are written alone; the first of the two
    # times out again, and the second gets that answer at once rather than one more wait.
    # The order of another coupon, written after them (lock order), is written.
    orders = await orders_of(db, 4, config)
    coupon_id = await with_new_coupon(db, orders[1])
    orders[3].row.update(coupon_id=coupon_id, coupon_code=orders[1].row["coupon_code"])
    assert await with_new_coupon(db, orders[2]) > coupon_id
    results, elapsed = await write_at_once_with_coupons_held(db, config, orders, [coupon_id])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncpg.QueryCanceledError)
    assert isinstance(results[3], asyncpg.QueryCanceledError)
    assert await stored(db, orders) == {orders[0].row["id"], orders[2].row["id"]}
    # The batch's timeout and one order's, not a third.
    assert 2 * STATEMENT_TIMEOUT <= elapsed < 2.7 * STATEMENT_TIMEOUT, elapsed


async def test_a_second_timeout_alone_fails_the_rest_at_once(
    db: asyncpg.Connection, config: Config
) -> None:
    # Two coupons held: after the second order times out too, the database counts as
    # too slow for any, and the last order is not tried.
    orders = await orders_of(db, 3, config)
    coupon_ids = [await with_new_coupon(db, order) for order in orders]
    assert coupon_ids == sorted(coupon_ids)
    results, elapsed = await write_at_once_with_coupons_held(db, config, orders, coupon_ids[:2])
    assert all(isinstance(result, asyncpg.QueryCanceledError) for result in results)
    assert await stored(db, orders) == set()
    # The batch's timeout and two orders', not a fourth.
    assert 3 * STATEMENT_TIMEOUT <= elapsed < 3.7 * STATEMENT_TIMEOUT, elapsed


async def test_a_group_of_one_timing_out_fails_none_of_the_other_groups(
    db: asyncpg.Connection, config: Config
) -> None:
    # The batch's customer order waits out the statement timeout on its customer's row;
    # its coupon order, another group, needs none of that row and is written.
    account = f"held-{uuid.uuid4().hex[:8]}"
    await known_customer(db, account)
    held = await customer_order(db, config, account)
    other = await prepared_order(db, config)
    await with_new_coupon(db, other)
    async with db.transaction():
        await db.execute(
            "SELECT 1 FROM customers WHERE merchant_id = $1 AND account = $2 FOR UPDATE",
            held.row["merchant_id"],
            account,
        )
        results, _ = await write_at_once_with_coupons_held(db, config, [held, other], [])
    assert isinstance(results[0], asyncpg.QueryCanceledError), results
    assert results[1] is None, results
    assert await stored(db, [held, other]) == {other.row["id"]}


async def test_a_slow_database_costs_a_batch_of_several_groups_three_timeouts_at_most(
    db: asyncpg.Connection, config: Config
) -> None:
    # Two customers' rows and two coupons held: the customers' group times out, then its
    # two orders alone; the coupon orders, a later group, get that answer at once.
    tag = uuid.uuid4().hex[:8]
    accounts = [f"slow-{tag}-{n}" for n in range(2)]
    for account in accounts:
        await known_customer(db, account)
    customers = [await customer_order(db, config, account) for account in accounts]
    coupons = [await prepared_order(db, config) for _ in range(2)]
    coupon_ids = [await with_new_coupon(db, order) for order in coupons]
    async with db.transaction():
        await db.execute(
            "SELECT 1 FROM customers WHERE merchant_id = $1 AND account = ANY($2::text[]) "
            "FOR UPDATE",
            customers[0].row["merchant_id"],
            accounts,
        )
        results, elapsed = await write_at_once_with_coupons_held(
            db, config, [*customers, *coupons], coupon_ids
        )
    assert all(isinstance(result, asyncpg.QueryCanceledError) for result in results), results
    assert await stored(db, [*customers, *coupons]) == set()
    # The group's timeout and two orders', not a fourth.
    assert 3 * STATEMENT_TIMEOUT <= elapsed < 3.7 * STATEMENT_TIMEOUT, elapsed


async def test_a_stored_idempotent_response_keeps_its_key_order_in_a_batch(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 2, config)
    claims = []
    for order in orders:
        claim = ("test-scope", f"key-{order.row['id']}", uuid.uuid4())
        await db.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, claim_id) "
            "VALUES ($1, $2, 'hash', 'in_progress', $3)",
            *claim,
        )
        claims.append(claim)
    bodies = [{"z": 1, "data": {"id": order.row["id"]}, "a": 2} for order in orders]
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=5.0)
    async with writer.running():
        await asyncio.gather(
            *(
                writer.place_order(args_of(replace(order, response_body=body), claim))
                for order, body, claim in zip(orders, bodies, claims, strict=True)
            )
        )
    assert await transactions_of(db, orders) == 1
    for body, claim in zip(bodies, claims, strict=True):
        text = await db.fetchval(
            "SELECT response_body::text FROM idempotency_keys WHERE scope = $1 AND key = $2",
            claim[0],
            claim[1],
        )
        assert list(json.loads(text)) == list(body)


async def test_an_order_cancelled_while_queued_is_not_written(
    small_pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    first, cancelled = await orders_of(db, 2, config)
    async with stuck_writer(small_pool, first, queue_timeout=10.0) as writer:
        queued = asyncio.create_task(writer.place_order(args_of(cancelled)))
        await until(lambda: writer.queued == 1)
        queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await stored(db, [first, cancelled]) == {first.row["id"]}


async def test_an_order_cancelled_while_its_writer_waits_for_a_connection_is_not_written(
    small_pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    cancelled, after = await orders_of(db, 2, config)
    writer = OrderWriter(small_pool, writers=1, max_batch=32, queue_timeout=10.0)
    async with writer.running():
        async with small_pool.acquire():
            placed = asyncio.create_task(writer.place_order(args_of(cancelled)))
            await until(lambda: writer_is_waiting(small_pool))
            placed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await placed
        # The writer gets the connection, finds its order gone, and goes on to the next.
        assert await writer.place_order(args_of(after)) is None
    assert await stored(db, [cancelled, after]) == {after.row["id"]}


async def test_an_order_gets_its_timeout_one_deadline_after_it_was_handed_over(
    db: asyncpg.Connection, config: Config
) -> None:
    # As in the service, the pool's acquire timeout is the writers' deadline. The pool's
    # only connection is held here: the first order's writer waits for it; the second
    # order, handed over half a deadline later, waits for the writer and would then wait
    # for the connection in its turn. Each is answered one deadline after it was handed
    # over, however its time went, and neither is written.
    first, second = await orders_of(db, 2, config)
    pool = await create_pool(replace(config, db_pool_max=1, db_acquire_timeout=DEADLINE))
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=DEADLINE)
    try:
        async with writer.running(), pool.acquire(timeout=10.0):
            first_answer = asyncio.create_task(answer_of(writer.place_order(args_of(first))))
            await until(lambda: writer_is_waiting(pool))
            await asyncio.sleep(DEADLINE / 2)  # the writer waits for the connection meanwhile
            second_answer = await answer_of(writer.place_order(args_of(second)))
            answers = [await first_answer, second_answer]
    finally:
        await pool.close()
    for answer, took in answers:
        assert isinstance(answer, TimeoutError), answer
        assert DEADLINE * 0.9 <= took < DEADLINE + LATE_BY_AT_MOST, [t for _, t in answers]
    assert await stored(db, [first, second]) == set()


async def test_an_order_whose_deadline_passes_while_it_is_written_is_written_and_answered(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # The first order's statement waits for a coupon row held here, past its deadline: it
    # was taken with a connection in hand before, so no deadline answers it 503, and it is
    # written (and answered) once the row is free. The second order, queued behind it
    # for the only writer, gets its timeout meanwhile and is not written.
    deadline = 0.3
    written, queued = await orders_of(db, 2, config)
    coupon_id = await with_new_coupon(db, written)
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=deadline)
    async with writer.running(), held_up_write(db, writer, written, coupon_id) as writing:
        with pytest.raises(TimeoutError):
            await writer.place_order(args_of(queued))
        # Handed over before the second order, so past its deadline too.
        assert not writing.done()
    assert await stored(db, [written, queued]) == {written.row["id"]}


async def test_an_order_past_its_deadline_when_its_writer_gets_to_it_is_not_written(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # An event loop running late (held up here on purpose, as a busy one would be): the
    # writer gets to the order after its deadline, before its timer has run. The order is
    # answered with its timeout there, and not written.
    deadline = 0.2
    (late,) = await orders_of(db, 1, config)
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=deadline)
    async with writer.running():
        placed = asyncio.create_task(writer.place_order(args_of(late)))
        await until(lambda: writer.queued == 1)
        time.sleep(deadline + 0.1)  # blocks the event loop: no timer runs meanwhile
        with pytest.raises(TimeoutError):
            await placed
    assert await stored(db, [late]) == set()


async def test_a_lone_order_chosen_as_a_deadlock_victim_is_written_again(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # A lone order locks a coupon, then a customer the batch holds; the batch waits for
    # a customer another transaction holds, then for that coupon. (No endpoint makes an
    # order with both a coupon and a customer; it stands for any two waits in opposite
    # orders, such as on a signed request replayed into two batches.)
    merchant_id = await db.fetchval("SELECT id FROM merchants WHERE code = 'eyezy'")
    tag = uuid.uuid4().hex[:8]
    first, held, third = f"a-{tag}", f"b-{tag}", f"c-{tag}"
    for account in (first, held):
        await db.execute(
            "INSERT INTO customers (merchant_id, account) VALUES ($1, $2)", merchant_id, account
        )
    coupon = (
        await db.fetchval(
            "INSERT INTO coupons (merchant_id, code, percent_off) VALUES ($1, $2, 10) RETURNING id",
            merchant_id,
            f"C{tag.upper()}",
        ),
        f"C{tag.upper()}",
    )
    lone = await customer_order(db, config, first, coupon)
    batch = [
        await customer_order(db, config, first),
        await customer_order(db, config, held),
        await customer_order(db, config, third, coupon),
    ]
    lone_writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=10.0)
    batch_writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=10.0)
    holder = await asyncpg.connect(config.database_url)
    try:
        async with lone_writer.running(), batch_writer.running():
            async with holder.transaction():
                await holder.execute(
                    "SELECT 1 FROM customers WHERE merchant_id = $1 AND account = $2 FOR UPDATE",
                    merchant_id,
                    held,
                )
                batch_written = asyncio.gather(
                    *(batch_writer.place_order(args_of(order)) for order in batch),
                    return_exceptions=True,
                )
                await until_lock_waits(db, 1)
                lone_written = asyncio.ensure_future(lone_writer.place_order(args_of(lone)))
                await until_lock_waits(db, 2)
            results = [await lone_written, *await batch_written]
    finally:
        await holder.close()
    # me_order orders answer with their references; none with an error.
    assert all(isinstance(result, str) for result in results), results
    assert await stored(db, [lone, *batch]) == {o.row["id"] for o in [lone, *batch]}


async def customer_order(
    db: asyncpg.Connection,
    config: Config,
    account: str,
    coupon: tuple[int, str] | None = None,
) -> PreparedOrder:
    order = await prepared_order(db, config)
    order.row.update(family="me_order", customer_account=account, details={})
    # Where place_order writes the customer's address into the event.
    order.event["payload"]["data"]["order"]["customer"] = {"account": account, "address": None}
    if coupon:
        order.row.update(coupon_id=coupon[0], coupon_code=coupon[1])
    return order


async def test_shutdown_writes_what_is_queued(
    small_pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 5, config)
    writer = OrderWriter(small_pool, writers=1, max_batch=32, queue_timeout=10.0)
    running = AsyncExitStack()
    await running.enter_async_context(writer.running())
    held = await small_pool.acquire()
    try:
        tasks = [asyncio.create_task(writer.place_order(args_of(o))) for o in orders]
        # The writer has taken the orders and waits for the connection held here.
        await until(lambda: writer_is_waiting(small_pool))
        stopping = asyncio.create_task(running.aclose())
        await until(lambda: not writer.accepting)
    finally:
        await small_pool.release(held)
    await stopping
    assert all(task.done() and task.result() is None for task in tasks)
    assert await stored(db, orders) == {order.row["id"] for order in orders}


async def test_without_running_each_order_is_written_alone(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    orders = await orders_of(db, 3, config)
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=5.0)
    await asyncio.gather(*(writer.place_order(args_of(o)) for o in orders))
    assert await transactions_of(db, orders) == 3


async def answer_of(call: Awaitable[Any]) -> tuple[Any, float]:
    """What `call` answered (its result, or the exception it raised) and how long it took."""
    started = time.monotonic()
    try:
        answer = await call
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        answer = exc
    return answer, time.monotonic() - started


def writer_is_waiting(pool: asyncpg.Pool) -> bool:
    """The pool's only connection is held, and someone else waits for it."""
    # asyncpg tells no count of waiters; its queue of connection holders does.
    queue: Any = pool._queue
    return bool(queue._getters)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


async def test_a_held_up_batch_does_not_hold_up_the_orders_behind_it(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # The only writer's batch waits for a coupon row held here; the standby writer takes
    # the order queued behind it once the batch has been held up for standby_after.
    standby_after = 0.2
    held, behind = await orders_of(db, 2, config)
    coupon_id = await with_new_coupon(db, held)
    writer = OrderWriter(
        pool, writers=1, max_batch=32, queue_timeout=5.0, standby_after=standby_after
    )
    async with writer.running(), held_up_write(db, writer, held, coupon_id) as writing:
        started = time.monotonic()
        assert await asyncio.wait_for(writer.place_order(args_of(behind)), 2.0) is None
        answered_after = time.monotonic() - started
        assert not writing.done()
    assert answered_after < standby_after + LATE_BY_AT_MOST
    assert await stored(db, [held, behind]) == {held.row["id"], behind.row["id"]}


async def test_orders_needing_a_held_row_do_not_hold_up_the_standby(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # Another order for the held coupon, queued with one that needs no held row: the
    # standby writes the second at once and leaves the first for after the held batch
    # (taken together, its batch would have waited for the same row, and no writer been
    # left for any order behind them).
    standby_after = 0.2
    held, same_coupon, plain = await orders_of(db, 3, config)
    coupon_id = await with_new_coupon(db, held)
    same_coupon.row.update(coupon_id=coupon_id, coupon_code=held.row["coupon_code"])
    writer = OrderWriter(
        pool, writers=1, max_batch=32, queue_timeout=5.0, standby_after=standby_after
    )
    async with writer.running(), held_up_write(db, writer, held, coupon_id) as writing:
        waiting = asyncio.create_task(writer.place_order(args_of(same_coupon)))
        started = time.monotonic()
        assert await asyncio.wait_for(writer.place_order(args_of(plain)), 2.0) is None
        answered_after = time.monotonic() - started
        assert not writing.done() and not waiting.done()
    assert answered_after < standby_after + LATE_BY_AT_MOST
    assert await asyncio.wait_for(waiting, 5.0) is None
    ids = {order.row["id"] for order in (held, same_coupon, plain)}
    assert await stored(db, [held, same_coupon, plain]) == ids


@asynccontextmanager
async def two_batches_held_up(
    db: asyncpg.Connection, writer: OrderWriter, first: PreparedOrder, second: PreparedOrder
) -> AsyncIterator[list[asyncio.Task[str | None]]]:
    """`first` and `second`, each with a coupon of its own whose row is held here (a catalog
    load rewriting coupons, say), handed to `writer` in turn: the writer's batch waits for
    one row, a standby's (once that batch has been held up) for the other. Both are
    written once the block ends."""
    coupons = [await with_new_coupon(db, order) for order in (first, second)]
    async with db.transaction():
        await db.execute("SELECT 1 FROM coupons WHERE id = ANY($1::bigint[]) FOR UPDATE", coupons)
        writing = []
        for waiting, order in enumerate((first, second), start=1):
            writing.append(asyncio.create_task(writer.place_order(args_of(order))))
            await until_lock_waits(db, waiting)
        yield writing
    assert [await task for task in writing] == [None, None]


async def test_a_held_up_standby_does_not_hold_up_the_orders_behind_it(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # Once the standby's batch has been held up too, the next standby takes the order
    # behind them, which needs neither row.
    standby_after = 0.2
    first, second, plain = await orders_of(db, 3, config)
    writer = OrderWriter(
        pool, writers=1, max_batch=32, queue_timeout=5.0, standby_after=standby_after, standbys=2
    )
    async with writer.running(), two_batches_held_up(db, writer, first, second) as writing:
        started = time.monotonic()
        assert await asyncio.wait_for(writer.place_order(args_of(plain)), 2.0) is None
        answered_after = time.monotonic() - started
        assert not any(task.done() for task in writing)
    assert answered_after < standby_after + LATE_BY_AT_MOST
    ids = {order.row["id"] for order in (first, second, plain)}
    assert await stored(db, [first, second, plain]) == ids


async def test_standbys_stop_at_their_number(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # With one standby, held up too, no writer is left: the order behind them waits for
    # its deadline (503) rather than one more connection being taken from the pool.
    first, second, plain = await orders_of(db, 3, config)
    writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=DEADLINE, standby_after=0.2)
    async with writer.running(), two_batches_held_up(db, writer, first, second):
        with pytest.raises(TimeoutError):
            await writer.place_order(args_of(plain))
    assert await stored(db, [first, second, plain]) == {first.row["id"], second.row["id"]}


def test_standbys_leave_the_relay_and_the_claims_their_connections(config: Config) -> None:
    assert standby_writers(replace(config, db_pool_max=10, order_writers=1)) == 6
    assert standby_writers(replace(config, db_pool_max=10, order_writers=4)) == 3
    assert standby_writers(replace(config, db_pool_max=2, order_writers=1)) == 1


async def test_an_order_postgresql_rolls_back_for_a_deadlock_is_a_503_not_a_500(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: Config
) -> None:
    # A real deadlock: the order holds its coupon's row and waits for a replay's
    # uncommitted token (held here), while this transaction then asks for the coupon.
    order, replay = await orders_of(db, 2, config)
    coupon_id = await with_new_coupon(db, order)
    token = f"tok-{uuid.uuid4().hex}"
    order.row["request_token"] = replay.row["request_token"] = token
    alone = OrderWriter(pool, writers=0, max_batch=1, queue_timeout=5.0)  # not running
    async with pool.acquire() as other:
        replay_written = other.transaction()
        await replay_written.start()
        try:
            await other.fetchval(
                "SELECT place_order($1::jsonb, $2::jsonb, $3::jsonb, NULL, NULL, NULL, NULL, NULL)",
                replay.row,
                replay.items,
                replay.event,
            )
            writing = asyncio.create_task(
                write_order(alone, lambda _: order, lambda: order.row["id"])
            )
            await until_lock_waits(db, 1)
            # PostgreSQL's check finds the cycle from the order's side first (it waited
            # first): the order is the one rolled back.
            await other.execute(
                "UPDATE coupons SET times_redeemed = times_redeemed WHERE id = $1", coupon_id
            )
            with pytest.raises(ServiceUnavailable) as refused:
                await writing
        finally:
            await replay_written.rollback()
    assert refused.value.code == "database_conflict"
    assert refused.value.headers == {"Retry-After": "1"}
    assert await stored(db, [order]) == set()


async def test_a_batch_that_never_rolls_back_is_given_up_within_the_stop_deadline(
    db: asyncpg.Connection, config: Config
) -> None:
    # PostgreSQL stops answering while a batch is in it and its request is cut off (the
    # shutdown's request wait ends): the cancelled batch's rollback is never answered, and
    # the writers' stop gives it up within its stop_within instead of waiting for it.
    stop_within = 0.5
    warm_up, order = await orders_of(db, 2, config)
    loop = asyncio.get_running_loop()
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = replace(config, database_url=proxy.url_for(config.database_url))
        pool = await create_pool(replace(proxied, db_pool_max=1, db_acquire_timeout=10.0))
        try:
            writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=10.0)
            async with writer.running(stop_within=lambda: stop_within):
                # Its connection opened and idle in the pool before the freeze.
                assert await writer.place_order(args_of(warm_up)) is None
                proxy.freeze()
                placing = asyncio.create_task(writer.place_order(args_of(order)))
                await until(lambda: proxy.held >= 1)
                placing.cancel()
                stopping_at = loop.time()
            stopped_after = loop.time() - stopping_at
        finally:
            pool.terminate()
    assert writer.batch_abandoned
    assert stopped_after < stop_within + LATE_BY_AT_MOST
    assert await stored(db, [warm_up, order]) == {warm_up.row["id"]}


WRITTEN_AGAIN = "order_service_order_batches_written_again_total"


async def until_another_lock_waits(db: asyncpg.Connection, than: int) -> None:
    """Until a session of this test's database other than the backend `than` waits for a
    lock."""
    async with asyncio.timeout(10):
        while True:
            await db.execute("SELECT pg_stat_clear_snapshot()")
            if await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND pid <> $1",
                than,
            ):
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("id_taken", [False, True], ids=["new_id", "id_of_another_order"])
async def test_a_batch_whose_backend_is_terminated_is_written_again_on_a_new_connection(
    db: asyncpg.Connection, config: Config, id_taken: bool
) -> None:
    # PostgreSQL terminates the writer's backend (a restart, a failover) while its batch
    # waits for a coupon's row: nothing of it committed. The order is written once more on
    # a new connection and answered as written, not 503. An order whose id another order
    # took meanwhile is refused for it (its write can draw another id): the order found
    # under its id is not the one the lost write would have stored.
    earlier, order = await orders_of(db, 2, config)
    if id_taken:
        order = twin_of(order, renamed={order.row["id"]: earlier.row["id"]})
        await db.fetchval(queries.place_order, *args_of(earlier))
    coupon_id = await with_new_coupon(db, order)
    written_again = REGISTRY.get_sample_value(WRITTEN_AGAIN) or 0.0
    pool = await create_pool(replace(config, db_acquire_timeout=10.0))
    try:
        writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=10.0)
        async with writer.running():
            async with db.transaction():
                await db.execute("SELECT 1 FROM coupons WHERE id = $1 FOR UPDATE", coupon_id)
                writing = asyncio.create_task(answer_of(writer.place_order(args_of(order))))
                await until_lock_waits(db, 1)
                terminated: int = await db.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
                assert await db.fetchval("SELECT pg_terminate_backend($1)", terminated)
                # The second write waits for the coupon's row in turn.
                await until_another_lock_waits(db, than=terminated)
            answer, _ = await writing
    finally:
        await pool.close()
    assert REGISTRY.get_sample_value(WRITTEN_AGAIN) == written_again + 1
    redeemed = await db.fetchval("SELECT times_redeemed FROM coupons WHERE id = $1", coupon_id)
    if id_taken:
        assert isinstance(answer, asyncpg.UniqueViolationError), answer
        assert answer.constraint_name == "orders_pkey"
        assert redeemed == 0
        assert await stored_as_written(db, earlier) != await stored_as_written(db, order)
    else:
        assert answer is None
        assert redeemed == 1
        assert await stored(db, [order]) == {order.row["id"]}


@pytest.mark.parametrize(
    ("family", "event_pruned"),
    [("initials", False), ("me_order", False), ("initials", True)],
    ids=["initials", "me_order", "initials_event_published_and_pruned"],
)
async def test_an_order_committed_as_its_connection_is_cut_is_answered_as_written_once(
    db: asyncpg.Connection, config: Config, family: str, event_pruned: bool
) -> None:
    # The reply to an order's commit is lost with its connection (the network cut it):
    # the order is in PostgreSQL, and its event goes out. The writer writes it once more
    # on a new connection, which PostgreSQL refuses for the order's id; the order is then
    # found under its id, merchant and creation time, and answered as written (a
    # Payway-style order with the reference the first write drew): not a 503 for an order
    # that exists, and not a second order. Also when its event was published and pruned
    # from the outbox meanwhile (OUTBOX_RETENTION_SECONDS=0).
    warm_up, order = await orders_of(db, 2, config)
    coupon_id = await with_new_coupon(db, order)
    if family == "me_order":
        coupon = (coupon_id, order.row["coupon_code"])
        order = await customer_order(db, config, f"cut-{uuid.uuid4().hex[:8]}", coupon)
    written_again = REGISTRY.get_sample_value(WRITTEN_AGAIN) or 0.0
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = replace(config, database_url=proxy.url_for(config.database_url))
        pool = await create_pool(replace(proxied, db_pool_max=1, db_acquire_timeout=10.0))
        try:
            writer = OrderWriter(pool, writers=1, max_batch=32, queue_timeout=10.0)
            async with writer.running():
                # Its connection opened and idle in the pool before the freeze.
                assert await writer.place_order(args_of(warm_up)) is None
                async with db.transaction():
                    await db.execute("SELECT 1 FROM coupons WHERE id = $1 FOR UPDATE", coupon_id)
                    writing = asyncio.create_task(answer_of(writer.place_order(args_of(order))))
                    await until_lock_waits(db, 1)
                    proxy.freeze()
                # The coupon's row is free: the order commits, and the proxy holds the reply.
                await until(lambda: proxy.held >= 1)
                assert await stored(db, [order]) == {order.row["id"]}
                if event_pruned:
                    await db.execute("DELETE FROM outbox WHERE aggregate_id = $1", order.row["id"])
                await proxy.reset()
                answer, _ = await writing
        finally:
            await pool.close()
    reference = await db.fetchval("SELECT reference FROM orders WHERE id = $1", order.row["id"])
    assert answer == reference
    assert (reference is None) == (family == "initials")
    assert REGISTRY.get_sample_value(WRITTEN_AGAIN) == written_again + 1
    assert await stored(db, [order]) == {order.row["id"]}
    assert await db.fetchval("SELECT times_redeemed FROM coupons WHERE id = $1", coupon_id) == 1
    events = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1", order.row["id"]
    )
    assert events == (0 if event_pruned else 1)
