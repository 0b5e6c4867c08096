"""A task that runs for as long as a block (an app's cleanup context, say) and is
cancelled, and awaited, when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import structlog

from service.cleanup_deadline import SHORTEST_STEP_SECONDS

log = structlog.get_logger(__name__)

# What a cancelled task may take to end (its own clean-up: closing its connection, say)
# before a second cancellation cuts that short, and then before it is left behind: a
# database that stops answering never answers a connection's close.
STOP_SECONDS = 1.0
# Names of the tasks left behind in this process: a stop that leaves one is not clean
# (service.server.shut_down exits 1 and names them).
_left_behind: list[str] = []


def left_behind() -> list[str]:
    """The names of the background tasks that did not stop when asked, in this process."""
    return list(_left_behind)


@contextlib.asynccontextmanager
async def running_in_background(
    work: Coroutine[Any, Any, Any],
    name: str,
    *,
    stop_within: Callable[[], float] | None = None,
) -> AsyncIterator[asyncio.Task[Any]]:
    """`stop_within`, asked when the block ends, caps the stop's two waits together."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        each = STOP_SECONDS
        if stop_within is not None:
            each = min(each, max(SHORTEST_STEP_SECONDS, stop_within() / 2))
        await _stop(task, each)


async def _stop(task: asyncio.Task[Any], seconds: float) -> None:
    for _ in range(2):
        task.cancel()
        # asyncio.wait, not `await task` under suppress(CancelledError): that would also
        # swallow a cancellation of the task that runs this block.
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:
            if not task.cancelled():
                task.result()  # the work's own failure is raised, as awaiting it would
            return
    log.error("background_task_did_not_stop", task=task.get_name())
    _left_behind.append(task.get_name())
