"""Throwaway databases for the foundation tests: one per test, dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from service.db import with_database
from service.migrations import migrate
from tests.conftest import ADMIN_URL


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def unborn_database_url() -> AsyncIterator[str]:
    """The URL of a database that does not exist yet (dropped after the test if made)."""
    name = f"order_service_fdn_{uuid.uuid4().hex[:12]}"
    yield with_database(ADMIN_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_database_url(unborn_database_url: str) -> str:
    """A database that exists and holds nothing."""
    name = unborn_database_url.rsplit("/", 1)[1]
    await _admin(f'CREATE DATABASE "{name}"')
    return unborn_database_url


@pytest.fixture
async def migrated_database_url(empty_database_url: str) -> str:
    """A database with every migration applied and no catalog."""
    await migrate(empty_database_url)
    return empty_database_url


@pytest.fixture
async def make_database() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """For tests that need several databases: each call creates one more empty database."""
    names: list[str] = []

    async def make() -> str:
        name = f"order_service_fdn_{uuid.uuid4().hex[:12]}"
        await _admin(f'CREATE DATABASE "{name}"')
        names.append(name)
        return with_database(ADMIN_URL, name)

    yield make
    for name in names:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
