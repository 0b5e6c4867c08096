"""`make run` decides between the configured PostgreSQL and the embedded one."""

from __future__ import annotations

from service.devrun import database_reachable
from tests.conftest import ADMIN_URL


async def test_a_running_server_is_reachable() -> None:
    assert await database_reachable(ADMIN_URL)


async def test_a_server_that_answers_with_an_error_still_counts_as_reachable() -> None:
    # "database does not exist" comes from a live server: migrate creates the database,
    # there is no reason to start an embedded one.
    assert await database_reachable("postgresql://postgres@127.0.0.1:5432/no_such_db_here")


async def test_nothing_listening_is_unreachable() -> None:
    # Port 1 refuses connections at once.
    assert not await database_reachable("postgresql://postgres@127.0.0.1:1/order_service")
