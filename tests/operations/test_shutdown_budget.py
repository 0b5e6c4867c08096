"""A worker's shutdown keeps to its budget and says when it was not clean: SHUTDOWN_TIMEOUT=0
cuts a request in flight off at once; shut_down returns 1 when the clean-up had to abandon
something (here the pool's close); HardStop ends a process still running at the end of its
budget with status 1 whatever its event loop is doing."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from service.app import CLEANUP_ABANDONED, create_app
from service.config import Config
from service.db import POOL_CLOSE_SECONDS
from service.server import shut_down
from service.state import POOL
from tests.faults.harness import INITIALS_PATH, initials_body, signed
from tests.operations.conftest import Launch
from tests.operations.test_shutdown import wait_for_lock_waiter
from tests.support.service_process import ROOT

# What a stop with SHUTDOWN_TIMEOUT=0 may take: the request is cut off at once, then the
# clean-up, the exit and the test's view of it; far from CLEANUP_GRACE_SECONDS (5 s), where
# a request waited for without a limit ends up.
EXIT_GRACE_SECONDS = 2.5


async def test_shutdown_timeout_0_cuts_a_request_off_at_once(
    launch: Launch, db: asyncpg.Connection
) -> None:
    code = f"HOLD{uuid.uuid4().hex[:8].upper()}"
    await db.execute(
        "INSERT INTO coupons (merchant_id, code, percent_off) "
        "SELECT id, $1, 10 FROM merchants WHERE code = 'eyezy'",
        code,
    )
    service = await launch("serve", "--workers", "1", SHUTDOWN_TIMEOUT="0")
    base_url = f"http://127.0.0.1:{await service.serving_port()}"
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        raw = initials_body(coupon=code)
        async with db.transaction():
            # The order's transaction waits on this row lock, held until the stop is over.
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
    assert stopped_after < EXIT_GRACE_SECONDS, stopped_after
    [cut_off] = [e for e in service.events if e.get("event") == "request"]
    assert (cut_off["status"], cut_off["cancelled"]) == (499, True)
    assert await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = $1", code) == 0


async def test_a_clean_shutdown_returns_0(config: Config) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    async with asyncio.timeout(10):
        assert await shut_down(runner) == 0
    assert runner.app[CLEANUP_ABANDONED] == []


async def test_a_pool_whose_close_times_out_makes_the_shutdown_unclean(config: Config) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    # A connection never given back: the pool's close waits for it, then gives up.
    await runner.app[POOL].acquire()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(POOL_CLOSE_SECONDS + 5):
        assert await shut_down(runner) == 1
    assert loop.time() - started >= POOL_CLOSE_SECONDS
    assert runner.app[CLEANUP_ABANDONED] == ["database_pool"]


async def test_a_hard_stop_ends_the_process_with_1_whatever_its_event_loop_does() -> None:
    # The main thread blocked for a minute: a loop that never gets to its own deadline.
    script = "\n".join(
        [
            "import time",
            "from service.server import HardStop",
            "HardStop().arm(0.5)",
            "time.sleep(60)",
        ]
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # Python's start-up and the import come first; far from the minute either way.
    output, _ = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 1, output
    assert b"shutdown_timed_out" in output
