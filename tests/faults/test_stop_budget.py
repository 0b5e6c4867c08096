"""SIGTERM to a single worker (`serve --workers 1`: no supervising parent to cut its stop
short) whose clean-up cannot finish, mid-load.

PostgreSQL stops answering (a frozen host: nothing is refused, nothing answers, no
connection closes): the relay's batch, the order writers' batches and the pool's
connections wait for it. The clean-up's steps share a deadline just short of the stop's
budget (SHUTDOWN_TIMEOUT for the requests in flight, then CLEANUP_GRACE_SECONDS of
clean-up), so the stop gives them up by then, names them, and exits 1.
Nothing is lost: an order whose commit PostgreSQL made but whose answer the freeze held
back got no answer; the clients retry with their Idempotency-Key against a new service on
the same port and get it (the stopped service's claims go stale first), and a final 200
has exactly its order and its event, which the new service's relay publishes.

RabbitMQ stops answering: the relay's batch never gets its confirms and is abandoned (its
rows stay unsent); the rest of the clean-up finishes within the budget, and the status is
1 all the same, even when the requests in flight took all of SHUTDOWN_TIMEOUT. The next
relay publishes those rows.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from events.relay import CONFIRM_TIMEOUT
from service.config import Config
from service.server import CLEANUP_GRACE_SECONDS
from tests.conftest import AMQP_URL
from tests.faults.conftest import Launch, report
from tests.faults.harness import (
    INITIALS_PATH,
    EventConsumer,
    Load,
    LogicalRequest,
    check_books,
    initials_body,
    signed,
    wait_until,
)
from tests.support.locks import until_lock_waits
from tests.support.service_process import ServiceProcess
from tests.support.tcp_proxy import TcpProxy

# What the process may take, past its budget, to be seen gone: the supervisor gives a
# worker the same second before its SIGKILL. A stop took 8 s with SHUTDOWN_TIMEOUT=0 and
# 10-11 s with 3 before (budgets of 5 s and 8 s), or did not end at all.
EXIT_GRACE_SECONDS = 1.0


@pytest.mark.parametrize("shutdown_timeout", [0.0, 3.0])
async def test_a_stop_with_the_database_frozen_ends_within_its_budget_and_exits_1(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
    shutdown_timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        service = await launch(
            "serve",
            "--workers",
            "1",
            DATABASE_URL=proxy.url_for(config.database_url),
            SHUTDOWN_TIMEOUT=shutdown_timeout,
        )
        port = await service.serving_port()
        load = Load(f"http://127.0.0.1:{port}", clients=8, retry=True)
        load.start()
        assert await wait_until(lambda: len(consumer.deliveries) >= 30, 20)

        proxy.freeze()
        # Order batches and the relay's claim (it polls every 0.2 s) wait for an answer.
        assert await wait_until(lambda: proxy.held >= 2, 5), proxy.held
        signalled = loop.time()
        service.send_signal(signal.SIGTERM)
        try:
            code = await service.wait(30)
        except TimeoutError:
            raise AssertionError(f"running 30 s after SIGTERM:\n{service.output()}") from None
        stopped_after = loop.time() - signalled
        # Its connections go (PostgreSQL rolls back what they left open, the relay's claim
        # included) before anything the freeze held could reach PostgreSQL.
        await proxy.cut()

    budget = shutdown_timeout + CLEANUP_GRACE_SECONDS
    ends = reported_stop(
        capsys,
        f"SIGTERM with the database frozen, SHUTDOWN_TIMEOUT={shutdown_timeout:g}",
        service,
        code,
        stopped_after,
        budget,
    )
    assert code == 1, service.output()
    assert shutdown_timeout <= stopped_after < budget + EXIT_GRACE_SECONDS, service.output()
    # Its clean-up's steps share one deadline, short of the budget: it ends by itself and
    # names what it gave up, rather than being ended mid-step by the hard stop.
    assert [e["event"] for e in ends] == ["shutdown_started", "shutdown_unclean"], ends
    assert "database_pool" in ends[-1]["abandoned"], ends

    restarted = await launch("serve", "--workers", "1", PORT=str(port))
    assert await restarted.serving_port() == port
    # A key the stopped service had claimed answers 409 until its claim is stale.
    await load.stop(retry_deadline=config.idempotency_claim_stale_seconds + 2)
    books = await check_books("SIGTERM with the database frozen", db, load.requests, consumer)
    assert await restarted.stop() == 0, restarted.output()
    finals = [r.final for r in load.requests]
    books.notes["attempts without an answer"] = sum(a.status is None for a in load.attempts)
    books.notes["answered by a stored response"] = sum(f.replayed for f in finals)
    report(capsys, books.line())
    books.assert_clean()
    assert [f.status for f in finals] == [200] * len(finals), [
        (r.key, [(a.status, a.code) for a in r.attempts])
        for r in load.requests
        if r.final.status != 200
    ]


async def test_a_stop_that_abandons_the_relays_batch_exits_1_within_its_budget(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loop = asyncio.get_running_loop()
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        service, load, order_id = await relay_batch_held_by_a_frozen_broker(
            launch, proxy, consumer, db
        )
        signalled = loop.time()
        service.send_signal(signal.SIGTERM)
        code = await service.wait(30)
        stopped_after = loop.time() - signalled
        await load.stop()
        await proxy.cut()

    budget = config.shutdown_timeout + CLEANUP_GRACE_SECONDS
    report(
        capsys,
        f"[fault] SIGTERM with RabbitMQ frozen: exit {code} after {stopped_after:.2f} s "
        f"(budget {budget:g} s)",
    )
    assert code == 1, service.output()
    assert stopped_after < budget, service.output()
    [unclean] = [e for e in service.events if e.get("event") == "shutdown_unclean"]
    assert unclean["abandoned"] == ["relay_batch"], service.output()
    events = [e.get("event") for e in service.events]
    assert "shutdown_timed_out" not in events, service.output()
    assert "shutdown_complete" not in events, service.output()

    await books_clean_after_the_next_relay(
        "SIGTERM with RabbitMQ frozen", launch, db, load, consumer, capsys, order_id
    )


async def test_a_stop_with_rabbitmq_frozen_and_requests_using_all_their_time_ends_itself(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A request in flight takes the whole SHUTDOWN_TIMEOUT (its coupon's row is held
    # here), and RabbitMQ stops answering: the relay's stop (up to 5 s) and the broker's
    # close (up to 4 s) would not fit in the clean-up's 5 s. They share its deadline, so
    # the worker ends its clean-up itself and names what it gave up, before the hard stop.
    shutdown_timeout = 2.0
    loop = asyncio.get_running_loop()
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        service, load, order_id = await relay_batch_held_by_a_frozen_broker(
            launch, proxy, consumer, db, SHUTDOWN_TIMEOUT=shutdown_timeout
        )
        await load.stop()
        port = await service.serving_port()

        raw = initials_body(coupon="HALFPRICE", sequence=f"held-{uuid.uuid4().hex[:12]}")
        async with db.transaction(), aiohttp.ClientSession() as session:
            await db.execute("SELECT 1 FROM coupons WHERE code = 'HALFPRICE' FOR UPDATE")
            posting = asyncio.create_task(
                session.post(
                    f"http://127.0.0.1:{port}{INITIALS_PATH}", data=raw, headers=signed(raw)
                )
            )
            await until_lock_waits(db, 1)
            signalled = loop.time()
            service.send_signal(signal.SIGTERM)
            code = await service.wait(30)
            stopped_after = loop.time() - signalled
            with pytest.raises(aiohttp.ClientError):
                await posting
        await proxy.cut()

    budget = shutdown_timeout + CLEANUP_GRACE_SECONDS
    ends = reported_stop(
        capsys,
        "SIGTERM with RabbitMQ frozen and a request using all of "
        f"SHUTDOWN_TIMEOUT={shutdown_timeout:g}",
        service,
        code,
        stopped_after,
        budget,
    )
    assert code == 1, service.output()
    assert shutdown_timeout <= stopped_after < budget, service.output()
    # Ended by itself: before, the hard stop ended it mid-step (shutdown_timed_out).
    [unclean] = [e for e in ends if e["event"] == "shutdown_unclean"]
    assert "shutdown_timed_out" not in [e["event"] for e in ends], service.output()
    assert "relay_batch" in unclean["abandoned"], service.output()
    [cut] = [e for e in service.events if e.get("event") == "request" and e.get("status") == 499]
    assert cut["route"] == INITIALS_PATH

    await books_clean_after_the_next_relay(
        "SIGTERM with RabbitMQ frozen, all time used", launch, db, load, consumer, capsys, order_id
    )


def reported_stop(
    capsys: pytest.CaptureFixture[str],
    title: str,
    service: ServiceProcess,
    code: int,
    stopped_after: float,
    budget: float,
) -> list[dict[str, Any]]:
    """The service's shutdown_* lines, its last one reported with how the stop went."""
    ends = [e for e in service.events if str(e.get("event")).startswith("shutdown_")]
    report(
        capsys,
        f"[fault] {title}: exit {code} after {stopped_after:.2f} s (budget {budget:g} s), "
        f"{ends[-1]['event']} {ends[-1].get('abandoned', '')}",
    )
    return ends


async def relay_batch_held_by_a_frozen_broker(
    launch: Launch, proxy: TcpProxy, consumer: EventConsumer, db: asyncpg.Connection, **env: Any
) -> tuple[ServiceProcess, Load, str]:
    """A single worker publishing through `proxy` under load, then RabbitMQ frozen: once
    its relay holds, in a batch that can never have its confirms, the event of an order
    committed after the freeze. Returns the service, its load (running) and that order."""
    service = await launch("serve", "--workers", "1", AMQP_URL=proxy.url_for(AMQP_URL), **env)
    port = await service.serving_port()
    load = Load(f"http://127.0.0.1:{port}", clients=8)
    load.start()
    assert await wait_until(lambda: len(consumer.deliveries) >= 30, 20)
    # Frozen only once the relay keeps up: a backlog left from a slow start (a loaded
    # machine) would be claimed first, a batch every CONFIRM_TIMEOUT, before the order's.
    assert await relay_caught_up(db, timeout=20), service.output()
    proxy.freeze()
    # An order of a request sent after the freeze: its event cannot have been confirmed.
    # (Counting completed attempts instead took the order of a request in flight at the
    # freeze, committed and published before it, which no relay would ever claim.)
    started_at = len(load.requests)
    assert await wait_until(lambda: orders_of(load.requests[started_at:]), 10)
    order_id = orders_of(load.requests[started_at:])[0]
    # The relay may still be in a batch claimed before the freeze, whose confirms it waits
    # for up to CONFIRM_TIMEOUT before it claims the next.
    assert await relay_claims(db, order_id, timeout=CONFIRM_TIMEOUT + 10), service.output()
    return service, load, order_id


def orders_of(requests: list[LogicalRequest]) -> list[str]:
    return [a.order_id for r in requests for a in r.attempts if a.order_id]


async def relay_caught_up(db: asyncpg.Connection, timeout: float) -> bool:
    """Until fewer unsent events wait than half a relay batch (RELAY_BATCH_SIZE's default
    is 500): those claimed before the freeze and the order's then fit in one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        unsent = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        if unsent < 250:
            return True
        await asyncio.sleep(0.05)
    return False


async def books_clean_after_the_next_relay(
    title: str,
    launch: Launch,
    db: asyncpg.Connection,
    load: Load,
    consumer: EventConsumer,
    capsys: pytest.CaptureFixture[str],
    order_id: str,
) -> None:
    """The abandoned batch's events go out with the next relay: every order has its
    event, `order_id`'s included."""
    relay = await launch("relay")
    await relay.wait_for_event(lambda e: e.get("event") == "relay_started")
    books = await check_books(title, db, load.requests, consumer)
    assert await relay.stop() == 0, relay.output()
    report(capsys, books.line())
    books.assert_clean()
    assert order_id in consumer.order_ids


async def relay_claims(db: asyncpg.Connection, order_id: str, timeout: float) -> bool:
    """Until a relay holds the unsent outbox row of `order_id` (claimed FOR UPDATE in the
    transaction of the batch it publishes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with db.transaction():
                await db.fetch(
                    "SELECT id FROM outbox WHERE payload->>'subject' = $1 "
                    "AND published_at IS NULL FOR UPDATE NOWAIT",
                    order_id,
                )
        except asyncpg.LockNotAvailableError:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_request_cut_off_at_the_stop_is_logged_while_its_claim_is_released(
    launch: Launch, config: Config, db: asyncpg.Connection
) -> None:
    # An order with an Idempotency-Key waits for its coupon's row (held here); then
    # PostgreSQL freezes and SIGTERM comes. The request is cut off at SHUTDOWN_TIMEOUT,
    # and its claim's release waits for the frozen database: it used to hold the
    # request's 499 until the hard stop, which ended the process with no line for it.
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        service = await launch(
            "serve",
            "--workers",
            "1",
            DATABASE_URL=proxy.url_for(config.database_url),
            SHUTDOWN_TIMEOUT="1",
            # Without a relay polling, the claim's connection waits idle in the pool: the
            # release's statement goes out on it and waits for the frozen database.
            RELAY_ENABLED="false",
        )
        port = await service.serving_port()
        raw = initials_body(coupon="HALFPRICE", sequence=f"cut-{uuid.uuid4().hex[:12]}")
        headers = {**signed(raw), "Idempotency-Key": f"cut-{uuid.uuid4().hex}"}
        async with db.transaction():
            await db.execute("SELECT 1 FROM coupons WHERE code = 'HALFPRICE' FOR UPDATE")
            async with aiohttp.ClientSession() as session:
                posting = asyncio.create_task(
                    session.post(
                        f"http://127.0.0.1:{port}{INITIALS_PATH}", data=raw, headers=headers
                    )
                )
                await until_lock_waits(db, 1)
                proxy.freeze()
                service.send_signal(signal.SIGTERM)
                cut = await service.wait_for_event(
                    lambda e: e.get("event") == "request" and e.get("status") == 499
                )
                with pytest.raises(aiohttp.ClientError):
                    await posting
        await proxy.cut()
    assert cut["route"] == INITIALS_PATH and cut["cancelled"] is True
    await service.wait(30)
