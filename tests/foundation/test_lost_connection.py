"""Statements run again on a new connection when theirs is lost under them (a database
restart ends every pooled connection, and asyncpg finds out only when one is used)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace

import asyncpg
import pytest

from service import idempotency
from service.config import Config
from service.db import (
    LOST_CONNECTION_ATTEMPTS,
    connection_lost,
    create_pool,
    forget_pooled_connections,
    run_again_if_lost,
)
from service.errors import Conflict
from service.sql import queries
from tests.support.locks import until_lock_waits


@pytest.fixture
async def pool(config: Config) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(config)
    yield created
    await created.close()


async def terminate(db: asyncpg.Connection, pid: int) -> None:
    """Ends the backend `pid` as a restart would, and waits until it is gone."""
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    async with asyncio.timeout(10):
        while await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.01)


async def test_a_statement_whose_connection_was_terminated_runs_again_on_a_new_one(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    backends: list[int] = []

    async def run(conn: asyncpg.Connection) -> int:
        backends.append(conn.get_server_pid())
        if len(backends) == 1:
            await terminate(db, backends[0])
        answer: int = await conn.fetchval("SELECT 41 + 1")
        return answer

    assert await run_again_if_lost(pool, run) == 42
    assert len(backends) == 2
    assert backends[0] != backends[1]


async def test_connections_lost_each_time_give_up_after_the_attempts(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    backends: list[int] = []

    async def run(conn: asyncpg.Connection) -> int:
        backends.append(conn.get_server_pid())
        await terminate(db, backends[-1])
        answer: int = await conn.fetchval("SELECT 1")
        return answer

    # Which error the last run meets depends on what asyncpg had read of the termination.
    with pytest.raises(Exception) as raised:
        await run_again_if_lost(pool, run)
    assert connection_lost(raised.value), raised.value
    assert len(backends) == LOST_CONNECTION_ATTEMPTS
    assert len(set(backends)) == LOST_CONNECTION_ATTEMPTS


async def test_a_run_that_got_too_far_to_repeat_is_not_run_again(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # The relay's round, say, once it has claimed its rows (and may have sent them).
    backends: list[int] = []
    got_far: list[bool] = []

    async def run(conn: asyncpg.Connection) -> int:
        backends.append(conn.get_server_pid())
        await terminate(db, backends[-1])
        got_far.append(len(backends) == 2)
        answer: int = await conn.fetchval("SELECT 1")
        return answer

    with pytest.raises(Exception) as raised:
        await run_again_if_lost(pool, run, may_run_again=lambda: not got_far[-1])
    assert connection_lost(raised.value), raised.value
    assert len(backends) == 2


async def test_a_statement_refused_timed_out_or_not_encodable_is_not_run_again(
    pool: asyncpg.Pool,
) -> None:
    runs: list[str] = []

    async def refused(conn: asyncpg.Connection) -> None:
        runs.append("refused")
        await conn.execute("SELECT 1 / 0")

    async def timed_out(conn: asyncpg.Connection) -> None:
        runs.append("timed out")
        await conn.execute("SELECT pg_sleep(1)", timeout=0.05)

    async def not_encodable(conn: asyncpg.Connection) -> None:
        runs.append("not encodable")
        await conn.execute("SELECT $1::integer", "not a number")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await run_again_if_lost(pool, refused)
    with pytest.raises(TimeoutError):
        await run_again_if_lost(pool, timed_out)
    with pytest.raises(asyncpg.DataError):
        await run_again_if_lost(pool, not_encodable)
    assert runs == ["refused", "timed out", "not encodable"]


async def claim_of(db: asyncpg.Connection, key: str, claim_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        queries.idempotency_claim, "test-scope", key, "request-hash", 3600, 10, claim_id
    )
    assert row is not None
    return row


async def test_an_idempotency_claim_run_again_by_its_request_is_its_own_again(
    db: asyncpg.Connection,
) -> None:
    # The claim committed and its answer was lost with the connection: run again with the
    # same claim id, it is the request's own claim, not a key "in use" for 10 s. Another
    # request's claim of the key is still refused while this one holds it.
    key, claim_id = f"key-{uuid.uuid4()}", uuid.uuid4()
    assert (await claim_of(db, key, claim_id))["claimed"]
    assert (await claim_of(db, key, claim_id))["claimed"]
    assert not (await claim_of(db, key, uuid.uuid4()))["claimed"]
    await db.execute(
        "UPDATE idempotency_keys SET status = 'completed', response_status = 200"
        " WHERE scope = 'test-scope' AND key = $1",
        key,
    )
    completed = await claim_of(db, key, claim_id)
    assert not completed["claimed"]
    assert completed["status"] == "completed"


async def test_a_loss_replaces_the_pooled_connections_and_older_losses_do_not_again(
    config: Config,
) -> None:
    # A restart's losses come one after the other: the first replaces every pooled
    # connection; one lost on a connection opened before that replaces nothing more (the
    # connections opened since are of the database that is back).
    pool = await create_pool(replace(config, db_pool_min=0, db_pool_max=2))
    try:
        async with pool.acquire() as old_one:
            old_pid = old_one.get_server_pid()
            await forget_pooled_connections(pool, old_one)
            async with pool.acquire() as new_one:
                new_pid = new_one.get_server_pid()
            await forget_pooled_connections(pool, old_one)
        async with pool.acquire() as first, pool.acquire() as second:
            pids = {first.get_server_pid(), second.get_server_pid()}
    finally:
        await pool.close()
    assert new_pid in pids
    assert old_pid not in pids


async def test_a_claim_whose_first_run_commits_while_it_runs_again_is_its_own(
    pool: asyncpg.Pool, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim run again on a new connection while its first run's transaction is still
    # open (a network cut, not a terminated backend) waits for that transaction; once it
    # commits, the statement's snapshot does not see the row it committed (no row, "in
    # use"). The claim then runs once more and finds its own claim, instead of answering
    # 409 to the request holding the key for the next 10 s. Here the first run's open
    # transaction is this test's, under the claim id the request draws.
    claim_id, key = uuid.uuid4(), f"key-{uuid.uuid4()}"
    monkeypatch.setattr(
        idempotency, "uuid", SimpleNamespace(uuid4=lambda: claim_id, UUID=uuid.UUID)
    )
    fingerprint = idempotency.RequestFingerprint(canonical="request-hash", raw="raw-hash")
    async with db.transaction():
        await db.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, claim_id)"
            " VALUES ('test-scope', $1, 'request-hash', 'in_progress', $2)",
            key,
            claim_id,
        )
        claiming = asyncio.create_task(
            idempotency.claim(pool, "test-scope", key, fingerprint, 3600, 10, Conflict)
        )
        await until_lock_waits(db, 1)
    claimed = await claiming
    assert isinstance(claimed, idempotency.IdempotencyClaim)
    assert claimed.claim_id == claim_id
