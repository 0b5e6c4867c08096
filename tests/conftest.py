"""Shared fixtures: a database of this test run's own (created, migrated, dropped), unique
exchange names, the demo catalog, and an app client against the real services."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
import pytest

from service.auth.signing import signed_headers
from service.config import Config, load_config
from service.db import with_database
from service.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOG = ROOT / "examples" / "demo-catalog.json"
ADMIN_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

configure_logging("warning", "json")


def _run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _create_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def database_url(run_id: str) -> Iterator[str]:
    """A freshly migrated database for this test session, with the demo catalog loaded."""
    from service.catalog_load import load_catalog_file
    from service.migrations import migrate

    name = f"order_service_test_{run_id}"
    url = with_database(ADMIN_URL, name)
    _run(_create_database(name))
    _run(migrate(url))
    _run(load_catalog_file(url, DEMO_CATALOG))
    yield url
    _run(_drop_database(name))


@pytest.fixture(scope="session")
def base_config(database_url: str, run_id: str) -> Config:
    return replace(
        load_config({}),
        database_url=database_url,
        amqp_url=AMQP_URL,
        events_exchange=f"orders_test_{run_id}",
        migrate_on_start=False,
        jwt_secret="test-jwt-secret-0123456789abcdef",
        outbox_poll_interval=0.2,
        log_level="warning",
        # An app here is one worker of `serve --workers 1`, with its two order writers.
        workers=1,
    )


@pytest.fixture(scope="session", autouse=True)
def _delete_exchange_after_run(base_config: Config) -> Iterator[None]:
    """The run's exchange is durable (as the relay declares it); remove it at the end,
    whichever tests ran."""
    yield

    async def delete() -> None:
        connection = await aio_pika.connect(base_config.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete(base_config.events_exchange)

    _run(delete())


@pytest.fixture
def config(base_config: Config) -> Config:
    return base_config


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Any:
    from service.app import create_app

    return await aiohttp_client(create_app(config))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )
    yield conn
    await conn.close()


# The demo catalog's merchants and keys, as tests use them.
EYEZY_KEY = ("pk_eyezy_1", "sk_eyezy_1_secret")
EYEZY_REVOKED_KEY = ("pk_eyezy_old", "sk_eyezy_old_secret")


@pytest.fixture
def sign() -> Callable[..., tuple[bytes, dict[str, str]]]:
    """sign(path, body, key=EYEZY_KEY, method="POST", **header_overrides) -> (raw, headers)."""

    def _sign(
        path: str,
        body: Any = None,
        key: tuple[str, str] = EYEZY_KEY,
        method: str = "POST",
        **overrides: Any,
    ) -> tuple[bytes, dict[str, str]]:
        raw = body if isinstance(body, bytes) else (b"" if body is None else orjson.dumps(body))
        headers = signed_headers(key[0], key[1], method, path, raw, **overrides)
        if raw:
            headers["Content-Type"] = "application/json"
        return raw, headers

    return _sign
