"""Applies the numbered SQL files of sql/migrations in order, once each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from service.db import ensure_database
from service.sql import SQL_DIR, queries

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = SQL_DIR / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works: it only has to be the same for every instance of the service.
MIGRATION_LOCK_ID = 0x6F726465  # "orde"
# How long a migration may wait for a table lock. A migration that alters a table waits
# for the transactions using it (a relay's batch holds its outbox rows up to the confirm
# timeout), and every order write queues behind the waiting migration: better to fail
# the start-up, which is tried again, than to stall orders.
LOCK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version number")
    return found


async def migrate(
    url: str, directory: Path = MIGRATIONS_DIR, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> list[int]:
    """Applies pending migrations; returns the versions applied by this call.

    Raises asyncpg.LockNotAvailableError when a migration cannot lock a table within
    `lock_timeout` seconds (nothing of that migration is applied)."""
    await ensure_database(url)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(queries.migration_lock_timeout, f"{int(lock_timeout * 1000)}ms")
        # A session-level advisory lock: a second instance starting at the same moment
        # waits here, then finds nothing left to apply.
        await conn.execute(queries.migration_lock, MIGRATION_LOCK_ID)
        try:
            await conn.execute(queries.create_schema_migrations)
            done = {r["version"] for r in await conn.fetch(queries.applied_migrations)}
            applied: list[int] = []
            for migration in discover(directory):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql())
                    await conn.execute(queries.record_migration, migration.version, migration.name)
                log.info("migration_applied", version=migration.version, name=migration.name)
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute(queries.migration_unlock, MIGRATION_LOCK_ID)
    finally:
        await conn.close()
