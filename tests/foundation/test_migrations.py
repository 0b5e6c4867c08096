"""`migrate` on empty, missing and half-migrated databases, alone and concurrently."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from service.migrations import MIGRATIONS_DIR, discover, migrate
from tests.conftest import ADMIN_URL

ALL_VERSIONS = [m.version for m in discover()]
ORDER_SERVICE = str(Path(sys.executable).parent / "order-service")

# Everything a migration can create, in a form that compares across databases.
SCHEMA_FINGERPRINT = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'function', proname || ' ' || md5(prosrc)
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || ' ' || tgname
  FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1, 2
"""


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _recorded(url: str) -> list[tuple[int, str]]:
    rows = await _fetch(url, "SELECT version, name FROM schema_migrations ORDER BY version")
    return [(r["version"], r["name"]) for r in rows]


async def _database_exists(url: str) -> bool:
    rows = await _fetch(
        ADMIN_URL, "SELECT 1 FROM pg_database WHERE datname = $1", url.rsplit("/", 1)[1]
    )
    return bool(rows)


async def test_every_migration_applies_on_an_empty_database(empty_database_url: str) -> None:
    applied = await migrate(empty_database_url)

    assert applied == ALL_VERSIONS
    assert await _recorded(empty_database_url) == [(m.version, m.name) for m in discover()]
    tables = {
        r["tablename"]
        for r in await _fetch(
            empty_database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"merchants", "products", "coupons", "orders", "outbox", "idempotency_keys"} <= tables


async def test_a_second_run_applies_nothing(migrated_database_url: str) -> None:
    before = await _fetch(migrated_database_url, "SELECT * FROM schema_migrations")
    fingerprint = await _fetch(migrated_database_url, SCHEMA_FINGERPRINT)

    assert await migrate(migrated_database_url) == []

    assert await _fetch(migrated_database_url, "SELECT * FROM schema_migrations") == before
    assert await _fetch(migrated_database_url, SCHEMA_FINGERPRINT) == fingerprint


async def test_migrate_creates_a_database_that_does_not_exist(unborn_database_url: str) -> None:
    assert not await _database_exists(unborn_database_url)

    assert await migrate(unborn_database_url) == ALL_VERSIONS

    assert await _database_exists(unborn_database_url)
    assert [v for v, _ in await _recorded(unborn_database_url)] == ALL_VERSIONS


async def test_concurrent_calls_apply_each_migration_once(unborn_database_url: str) -> None:
    # Both calls also race to create the database itself.
    first, second = await asyncio.gather(migrate(unborn_database_url), migrate(unborn_database_url))

    assert sorted(first + second) == ALL_VERSIONS
    assert [v for v, _ in await _recorded(unborn_database_url)] == ALL_VERSIONS


async def test_two_processes_migrating_at_once_both_succeed(unborn_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": unborn_database_url, "LOG_LEVEL": "info"}
    processes = [
        await asyncio.create_subprocess_exec(
            ORDER_SERVICE,
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))

    applied: list[int] = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        lines: list[dict[str, Any]] = [orjson.loads(line) for line in stdout.splitlines()]
        applied += [line["version"] for line in lines if line["event"] == "migration_applied"]
    assert sorted(applied) == ALL_VERSIONS
    assert [v for v, _ in await _recorded(unborn_database_url)] == ALL_VERSIONS


@pytest.mark.parametrize("done", range(len(ALL_VERSIONS)))
async def test_migrating_from_any_earlier_version_ends_in_the_same_schema(
    done: int, make_database: Any, tmp_path: Path
) -> None:
    # The stairway: a database left at any version reaches the same schema as one
    # migrated in a single run. (There are no down-migrations to walk back.)
    straight, stepped = await make_database(), await make_database()
    await migrate(straight)
    for migration in discover()[:done]:
        (tmp_path / migration.path.name).symlink_to(migration.path)
    assert await migrate(stepped, tmp_path) == ALL_VERSIONS[:done]

    assert await migrate(stepped) == ALL_VERSIONS[done:]

    assert await _fetch(stepped, SCHEMA_FINGERPRINT) == await _fetch(straight, SCHEMA_FINGERPRINT)


def test_discover_refuses_a_misnamed_file(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1")
    (tmp_path / "2_bad name.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    assert list(range(1, len(ALL_VERSIONS) + 1)) == ALL_VERSIONS
    assert all(m.path.parent == MIGRATIONS_DIR for m in discover())


async def test_a_migration_that_cannot_lock_its_table_fails_instead_of_queueing(
    migrated_database_url: str, tmp_path: Path
) -> None:
    # A transaction still using the table, as a relay's batch uses the outbox.
    holder = await asyncpg.connect(migrated_database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT count(*) FROM outbox")
            for migration in discover():
                (tmp_path / migration.path.name).symlink_to(migration.path)
            (tmp_path / "9999_alter_outbox.sql").write_text(
                "ALTER TABLE outbox ADD COLUMN lock_test integer;\n"
            )
            with pytest.raises(asyncpg.LockNotAvailableError):
                await migrate(migrated_database_url, tmp_path, lock_timeout=0.3)
    finally:
        await holder.close()
    assert 9999 not in [v for v, _ in await _recorded(migrated_database_url)]
    # Once the table is free the migration goes through.
    assert await migrate(migrated_database_url, tmp_path) == [9999]


async def test_the_outbox_is_vacuumed_after_a_fixed_number_of_dead_rows(
    migrated_database_url: str,
) -> None:
    # Every published row leaves a dead entry in outbox_unpublished_idx that each claim
    # walks over until VACUUM: the default (a fifth of the table dead) let a week's
    # outbox gather days of them (migration 0010).
    [row] = await _fetch(
        migrated_database_url, "SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass"
    )
    assert set(row["reloptions"]) == {
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=10000",
    }
