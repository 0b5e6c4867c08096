"""`make run` decides between the configured PostgreSQL and the embedded one."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

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


async def test_a_database_that_cannot_be_reached_is_one_json_line_not_a_traceback() -> None:
    # An explicit DATABASE_URL is used as it is (no embedded PostgreSQL): its failure is
    # reported as the order-service commands report theirs, with the password masked.
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/order_service",
        "LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.devrun",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    lines = [orjson.loads(line) for line in output.decode().splitlines() if line.strip()]
    [failed] = [line for line in lines if line["event"] == "command_failed"]
    assert failed["command"] == "run" and failed["level"] == "error"
    assert "Traceback" not in output.decode() and "s3cret" not in output.decode()
