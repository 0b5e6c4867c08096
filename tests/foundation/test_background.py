"""running_in_background: the block's end cancels the task and waits for it, within bounds,
and never swallows a cancellation of the task that runs the block."""

from __future__ import annotations

import asyncio

import pytest

from service import background
from service.background import left_behind, running_in_background

# Shorter than the service's STOP_SECONDS (1 s), for quicker tests.
STOP_SECONDS = 0.2


@pytest.fixture(autouse=True)
def _short_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "STOP_SECONDS", STOP_SECONDS)


class Stuck:
    """Work that runs until cancelled, then cleans up until `released` (the close of a
    connection that the database does not answer, say)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaning = asyncio.Event()
        self.released = asyncio.Event()

    async def work(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cleaning.set()
            await self.released.wait()


async def test_a_cancellation_of_the_block_is_passed_on() -> None:
    stuck = Stuck()

    async def block() -> None:
        async with running_in_background(stuck.work(), "stuck"):
            await stuck.started.wait()

    outer = asyncio.create_task(block())
    await asyncio.wait_for(stuck.cleaning.wait(), 5)
    outer.cancel()  # a shutdown cutting its clean-up short
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(outer, 5)
    finally:
        stuck.released.set()


async def test_a_task_whose_clean_up_hangs_is_cancelled_again() -> None:
    stuck = Stuck()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        async with running_in_background(stuck.work(), "stuck") as task:
            await stuck.started.wait()
            ending = loop.time()
        took = loop.time() - ending
    # A second cancellation cut the clean-up short, STOP_SECONDS after the first.
    assert stuck.cleaning.is_set() and not stuck.released.is_set()
    assert task.cancelled()
    assert STOP_SECONDS <= took < STOP_SECONDS + 1.0, took


async def test_a_task_that_will_not_end_is_left_behind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started, done = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not done.is_set():
            try:
                await done.wait()
            except asyncio.CancelledError:
                continue

    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        async with running_in_background(stubborn(), "stubborn") as task:
            await started.wait()
            ending = loop.time()
    took = loop.time() - ending
    try:
        assert 2 * STOP_SECONDS <= took < 2 * STOP_SECONDS + 1.0, took
        assert not task.done()
        assert "background_task_did_not_stop" in capsys.readouterr().out
        assert "stubborn" in left_behind()
    finally:
        done.set()
        await asyncio.wait_for(task, 5)


async def test_the_works_own_failure_is_raised() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        async with running_in_background(fails(), "fails") as task:
            await asyncio.wait({task})
