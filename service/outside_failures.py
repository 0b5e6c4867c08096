"""Failures from outside a process that stop a command or a worker at start: the database
unreachable or refusing the role, a port or a file that cannot be had. An operator gets
one log line naming the cause, not a traceback."""

from __future__ import annotations

import asyncpg

OUTSIDE_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
