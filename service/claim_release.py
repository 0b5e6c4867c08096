"""Releasing an Idempotency-Key claim when the order write failed, even if the database
is away at that moment.

A failed request releases its claim so the client's retry can use the key. When the
failure was the database going away, the release fails too; left alone, the claim would
block the key (409 idempotency_key_in_use) until it counts as stale. So the release is
retried in the background until the database answers. It cannot undo a committed order:
it deletes only a claim still `in_progress`, and an order that did commit before the
connection dropped has already marked its record `completed`, so the retry gets the
stored response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg
import structlog

from service import idempotency
from service.db import DATABASE_DOWN

log = structlog.get_logger(__name__)

RETRY_FIRST_DELAY = 0.2
RETRY_MAX_DELAY = 2.0

# Background releases in flight; held here so they are not garbage-collected mid-way.
_pending: set[asyncio.Task[None]] = set()


async def release_claim(pool: asyncpg.Pool, claim: idempotency.IdempotencyClaim) -> None:
    try:
        await idempotency.release(pool, claim)
    except DATABASE_DOWN as exc:
        log.warning("idempotency_release_deferred", error=repr(exc))
        _in_background(_release_when_back(pool, claim))


def release_claim_soon(pool: asyncpg.Pool, claim: idempotency.IdempotencyClaim) -> None:
    """release_claim() on its own, for a request cut off (shutdown): the request ends, and
    is logged, now; the release goes on without it (a frozen database would otherwise hold
    the request, unlogged, past the process's hard stop)."""
    _in_background(release_claim(pool, claim))


def _in_background(release: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(release, name="idempotency-release")
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _release_when_back(pool: asyncpg.Pool, claim: idempotency.IdempotencyClaim) -> None:
    loop = asyncio.get_running_loop()
    # After this long the claim counts as stale anyway and a retry takes it over.
    deadline = loop.time() + claim.stale_seconds
    delay = RETRY_FIRST_DELAY
    while loop.time() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_DELAY)
        try:
            await idempotency.release(pool, claim)
        except DATABASE_DOWN:
            continue
        log.info("idempotency_release_done")
        return
