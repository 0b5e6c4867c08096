"""Graceful shutdown of a real `order-service serve` process, one worker or several."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.harness import INITIALS_PATH, initials_body, signed
from tests.operations.conftest import Launch

# Time the service may take, past SHUTDOWN_TIMEOUT, to cancel the request cut off, close its
# pool and broker connection and exit: half of a shutdown_timeout of 5 s, not
# service.server.CLEANUP_GRACE_SECONDS (5 s), which would let a doubled wait pass too.
EXIT_GRACE_SECONDS = 2.5


async def wait_until_refused(port: int, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, probe = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        probe.close()
        await asyncio.sleep(0.02)
    return False


async def test_sigterm_finishes_the_request_in_flight_then_exits_0(
    launch: Launch, db: asyncpg.Connection
) -> None:
    code = f"HOLD{uuid.uuid4().hex[:8].upper()}"
    await db.execute(
        "INSERT INTO coupons (merchant_id, code, percent_off) "
        "SELECT id, $1, 10 FROM merchants WHERE code = 'eyezy'",
        code,
    )
    service = await launch("serve", "--workers", "1")
    base_url = f"http://127.0.0.1:{await service.serving_port()}"
    async with aiohttp.ClientSession() as session:
        raw = initials_body(coupon=code)
        async with db.transaction():
            # The order's transaction waits on this row lock: a request in flight.
            await db.execute("SELECT 1 FROM coupons WHERE code = $1 FOR UPDATE", code)
            in_flight = asyncio.create_task(
                session.post(base_url + INITIALS_PATH, data=raw, headers=signed(raw))
            )
            await wait_for_lock_waiter(db, code, in_flight)
            service.send_signal(signal.SIGTERM)
            # No longer accepting...
            assert await wait_until_refused(int(base_url.rsplit(":", 1)[1]))
        # ...but the request in flight completes once the lock is gone.
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200, await response.text()
    assert await service.wait(20) == 0, service.output()
    assert any(e.get("event") == "shutdown_complete" for e in service.events)


# 0: cut off at once (aiohttp's own 0 would mean no limit at all).
@pytest.mark.parametrize("shutdown_timeout", [5.0, 0.0])
async def test_a_request_still_running_at_the_shutdown_timeout_is_cut_off_then(
    launch: Launch, db: asyncpg.Connection, shutdown_timeout: float
) -> None:
    code = f"HOLD{uuid.uuid4().hex[:8].upper()}"
    await db.execute(
        "INSERT INTO coupons (merchant_id, code, percent_off) "
        "SELECT id, $1, 10 FROM merchants WHERE code = 'eyezy'",
        code,
    )
    # The statement must outlast twice the timeout: the default statement_timeout (5 s)
    # would end it first and cap a doubled wait below 2 x SHUTDOWN_TIMEOUT.
    statement_timeout_ms = int(shutdown_timeout * 2 * 1000) + 10_000
    service = await launch(
        "serve",
        "--workers",
        "1",
        SHUTDOWN_TIMEOUT=str(shutdown_timeout),
        DB_STATEMENT_TIMEOUT_MS=str(statement_timeout_ms),
    )
    base_url = f"http://127.0.0.1:{await service.serving_port()}"
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        raw = initials_body(coupon=code)
        async with db.transaction():
            # Held past the timeout: the request can never finish.
            await db.execute("SELECT 1 FROM coupons WHERE code = $1 FOR UPDATE", code)
            in_flight = asyncio.create_task(
                session.post(base_url + INITIALS_PATH, data=raw, headers=signed(raw))
            )
            await wait_for_lock_waiter(db, code, in_flight)
            signalled = loop.time()
            service.send_signal(signal.SIGTERM)
            assert await service.wait(20) == 0, service.output()
            stopped_after = loop.time() - signalled
        with pytest.raises(aiohttp.ClientError):
            await in_flight
    # SHUTDOWN_TIMEOUT for the request, not twice that (aiohttp waits for it twice), plus
    # the exit itself. The grace sits halfway between the two: room for a loaded machine,
    # and a wait of 2 x SHUTDOWN_TIMEOUT still fails by as much.
    assert shutdown_timeout <= stopped_after < shutdown_timeout + EXIT_GRACE_SECONDS, stopped_after
    assert any(e.get("event") == "shutdown_complete" for e in service.events)
    [cut_off] = [e for e in service.events if e.get("event") == "request"]
    assert (cut_off["route"], cut_off["status"], cut_off["cancelled"]) == (
        INITIALS_PATH,
        499,
        True,
    )
    # Its transaction was rolled back: the coupon counts no redemption, no order exists.
    assert await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = $1", code) == 0


async def wait_for_lock_waiter(
    db: asyncpg.Connection, code: str, request: asyncio.Task[aiohttp.ClientResponse]
) -> None:
    """Until a session of the service waits for a lock (the order write has begun)."""
    for _ in range(200):
        if request.done():
            response = request.result()
            raise AssertionError(f"answered at once: {response.status} {await response.text()}")
        # Inside a transaction pg_stat_activity is a snapshot unless cleared.
        await db.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND application_name = 'order-service'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no order write waiting on the lock of coupon {code}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_workers_share_one_port_and_stop_together(launch: Launch, signum: int) -> None:
    service = await launch("serve", "--workers", "2")
    supervising = await service.wait_for_event(lambda e: e.get("event") == "supervising")
    port = supervising["port"]
    await service.wait_for_event(
        lambda e: len({x["pid"] for x in service.events if x.get("event") == "serving"}) == 2
    )
    # One connection per request, so the kernel spreads them over both workers.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):
            async with session.get(f"http://127.0.0.1:{port}/health/live") as response:
                assert response.status == 200
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    # Whichever worker answered the scrape, it counts the requests of both.
    live = ("method", "GET"), ("route", "/health/live"), ("status", "200")
    assert samples[("order_service_http_requests_total", live)] == 20
    assert ("order_service_db_pool_size", ()) in samples

    service.send_signal(signum)
    assert await service.wait(30) == 0, service.output()
    stopped = [e for e in service.events if e.get("event") == "shutdown_complete"]
    assert len(stopped) == 2


async def test_a_worker_that_dies_is_replaced(launch: Launch) -> None:
    service = await launch("serve", "--workers", "2")

    def serving_pids() -> set[int]:
        return {e["pid"] for e in service.events if e.get("event") == "serving"}

    await service.wait_for_event(lambda e: len(serving_pids()) == 2)
    victim = min(serving_pids())
    os.kill(victim, signal.SIGKILL)
    await service.wait_for_event(lambda e: e.get("event") == "worker_died")
    await service.wait_for_event(lambda e: len(serving_pids()) == 3)

    service.send_signal(signal.SIGTERM)
    assert await service.wait(30) == 0, service.output()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" not in status.read()
    except FileNotFoundError:
        return False


async def test_workers_stop_when_the_supervisor_is_killed_and_the_next_start_removes_its_metrics(
    launch: Launch, tmp_path: Path
) -> None:
    # The metrics directories are made with mkdtemp, which honours TMPDIR: one of this
    # test's own, so no other test's or instance's directories count.
    service_tmp = tmp_path / "service-tmp"
    service_tmp.mkdir()
    service = await launch("serve", "--workers", "2", TMPDIR=str(service_tmp))
    killed_dir = (await service.wait_for_event(supervising))["metrics_dir"]
    await service.wait_for_event(
        lambda e: len({x["pid"] for x in service.events if x.get("event") == "serving"}) == 2
    )
    workers = {e["pid"] for e in service.events if e.get("event") == "serving"}
    os.kill(service.pid, signal.SIGKILL)
    await service.wait_for_event(
        lambda e: sum(x.get("event") == "shutdown_complete" for x in service.events) == 2
    )
    for _ in range(100):
        if not any(alive(pid) for pid in workers):
            break
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in workers)

    # A killed supervisor cannot remove its metrics directory; the next one to start
    # does, and leaves a live instance's alone.
    assert Path(killed_dir).is_dir()
    live = await launch("serve", "--workers", "2", TMPDIR=str(service_tmp))
    live_dir = (await live.wait_for_event(supervising))["metrics_dir"]
    [removed] = [e for e in live.events if e.get("event") == "metrics_directories_removed"]
    assert removed["paths"] == [killed_dir]
    assert not Path(killed_dir).exists()
    another = await launch("serve", "--workers", "2", TMPDIR=str(service_tmp))
    await another.wait_for_event(supervising)
    assert Path(live_dir).is_dir()
    assert not [e for e in another.events if e.get("event") == "metrics_directories_removed"]

    for stopping in (another, live):
        stopping.send_signal(signal.SIGTERM)
        assert await stopping.wait(30) == 0, stopping.output()
    assert list(service_tmp.iterdir()) == []


def supervising(event: dict[str, object]) -> bool:
    return event.get("event") == "supervising"
