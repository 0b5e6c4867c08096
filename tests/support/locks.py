"""Waiting, in a test, until sessions of this test's database wait for a lock."""

from __future__ import annotations

import asyncio

import asyncpg


async def until_lock_waits(db: asyncpg.Connection, count: int = 1, timeout: float = 10) -> None:
    """Until `count` sessions of the current database wait for a lock."""
    async with asyncio.timeout(timeout):
        while True:
            # Inside a transaction pg_stat_activity is a snapshot unless cleared.
            await db.execute("SELECT pg_stat_clear_snapshot()")
            waiting: int = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
