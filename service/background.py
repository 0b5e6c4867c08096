"""A task that runs for as long as a block (an app's cleanup context, say) and is
cancelled, and awaited, when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def running_in_background(
    work: Coroutine[Any, Any, Any], name: str
) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
