"""A worker's shutdown says when it was not clean: shut_down returns 1 when the clean-up
had to abandon something (here the pool's close); HardStop ends a process still running
at the end of its budget with status 1 whatever its event loop is doing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from service import background
from service.app import CLEANUP_ABANDONED, create_app
from service.cleanup_deadline import SHORTEST_STEP_SECONDS
from service.config import Config
from service.db import POOL_CLOSE_SECONDS
from service.server import shut_down
from service.state import POOL
from tests.support.service_process import ROOT


async def test_a_clean_shutdown_returns_0(config: Config) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    async with asyncio.timeout(10):
        assert await shut_down(runner) == 0
    assert runner.app[CLEANUP_ABANDONED] == []


async def test_a_pool_whose_close_times_out_makes_the_shutdown_unclean(config: Config) -> None:
    took = await shut_down_with_a_connection_never_given_back(config, cleanup_within=None)
    assert took >= POOL_CLOSE_SECONDS


async def test_the_pool_close_takes_no_longer_than_the_cleanup_deadline_allows(
    config: Config,
) -> None:
    took = await shut_down_with_a_connection_never_given_back(config, cleanup_within=0.5)
    # Its own limit is POOL_CLOSE_SECONDS; the deadline (and the shortest wait a step
    # gets past it) cut it short.
    assert took < 0.5 + 4 * SHORTEST_STEP_SECONDS


async def shut_down_with_a_connection_never_given_back(
    config: Config, cleanup_within: float | None
) -> float:
    """The pool's close waits for the connection, then gives up: the stop is unclean,
    naming the pool. Returns the seconds the stop took."""
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    await runner.app[POOL].acquire()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(POOL_CLOSE_SECONDS + 5):
        assert await shut_down(runner, cleanup_within) == 1
    assert runner.app[CLEANUP_ABANDONED] == ["database_pool"]
    return loop.time() - started


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


async def test_a_background_task_left_behind_makes_the_shutdown_unclean(
    config: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(background, "STOP_SECONDS", 0.1)
    released = asyncio.Event()

    async def ignores_cancellation() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    async def stubborn_context(_app: web.Application) -> AsyncIterator[None]:
        async with background.running_in_background(ignores_cancellation(), "stubborn"):
            yield

    app = create_app(config)
    app.cleanup_ctx.append(stubborn_context)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        async with asyncio.timeout(10):
            assert await shut_down(runner) == 1
    finally:
        released.set()
    unclean = [line for line in capsys.readouterr().out.splitlines() if "shutdown_unclean" in line]
    assert len(unclean) == 1
    assert json.loads(unclean[0])["abandoned"] == ["task:stubborn"]
