"""Fresh benchmark databases: created, migrated, demo catalog loaded, dropped afterwards."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from service.catalog_load import load_catalog_file
from service.db import database_name, with_database
from service.migrations import migrate

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOG = ROOT / "examples" / "demo-catalog.json"

UNSENT_EVENTS = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


async def create_bench_database(admin_url: str, name: str) -> str:
    """A new database `name` with the service's schema and the demo catalog; its URL."""
    url = with_database(admin_url, name)
    await drop_database(admin_url, name)
    await migrate(url)  # creates the database first
    await load_catalog_file(url, DEMO_CATALOG)
    return url


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        # DROP DATABASE takes no bind parameters; the name is quoted as an identifier.
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


async def unsent_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(UNSENT_EVENTS)
        return count
    finally:
        await conn.close()


def name_of(url: str) -> str:
    return database_name(url)
