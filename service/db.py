"""The PostgreSQL pool: JSON codecs, timeouts, and creating the database when missing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from service.config import Config, redact_url

log = structlog.get_logger(__name__)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_connection(url: str) -> asyncpg.Connection:
    """A single connection with the service's JSON codecs (CLI commands use one)."""
    conn = await asyncpg.connect(url, timeout=10)
    await _init_connection(conn)
    return conn


async def create_pool(config: Config) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        config.database_url,
        min_size=config.db_pool_min,
        max_size=config.db_pool_max,
        init=_init_connection,
        # The app keeps no session state on a connection, so the default reset
        # (an extra round trip on every release) buys nothing.
        reset=_no_reset,
        server_settings={
            "statement_timeout": str(config.db_statement_timeout_ms),
            "application_name": "order-service",
        },
        command_timeout=max(config.db_statement_timeout_ms / 1000 + 1, 2),
        timeout=config.db_acquire_timeout,
    )
    log.info("database_pool_open", dsn=config.database_url_redacted, max_size=config.db_pool_max)
    return pool


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(url: str) -> bool:
    """Creates the database named in the URL if it does not exist; True when created."""
    name = database_name(url)
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        # CREATE DATABASE takes no bind parameters; the name is quoted as an identifier.
        quoted = await admin.fetchval("SELECT quote_ident($1)", name)
        try:
            await admin.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
    finally:
        await admin.close()
    log.info("database_created", dsn=redact_url(url))
    return True
