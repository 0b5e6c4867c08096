"""The PostgreSQL pool: JSON codecs, timeouts, and creating the database when missing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from service.config import Config, redact_url

log = structlog.get_logger(__name__)

POOL_CLOSE_SECONDS = 3.0

Result = TypeVar("Result")

# Errors that mean the database cannot be reached or take work right now (the request may
# be retried): the connection is refused, lost or cut off, or PostgreSQL turns new
# connections away (shutting down or starting, too many clients, the database closed to
# connections or dropped, this role refused by pg_hba.conf).
DATABASE_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A pooled connection whose backend was terminated while it sat idle (a restart, a
    # failover, pg_terminate_backend): asyncpg has read PostgreSQL's FATAL error but not
    # yet the close, and refuses the next query ("cannot switch to state ...").
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    ConnectionError,
    OSError,
    TimeoutError,
)

# Of those, the errors of a connection lost while in use: PostgreSQL terminated its backend
# or went away, or the network cut the connection. What was sent on it may have committed
# or not. A timeout is not one of them: the database may still be working on the query.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
)


def connection_lost(exc: BaseException) -> bool:
    """The connection `exc` came from was lost under its query (see _CONNECTION_LOST). A
    protocol violation PostgreSQL reports (class 08 too) would only happen again."""
    return isinstance(exc, _CONNECTION_LOST) and not isinstance(exc, asyncpg.ProtocolViolationError)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


# Runs of a statement that is safe to repeat, while the connection each ran on is lost
# under it (see run_again_if_lost).
LOST_CONNECTION_ATTEMPTS = 3


def _always() -> bool:
    return True


async def run_again_if_lost(
    pool: asyncpg.Pool,
    run: Callable[[asyncpg.Connection], Awaitable[Result]],
    *,
    may_run_again: Callable[[], bool] = _always,
) -> Result:
    """`run(conn)` on a pooled connection, and again on a new one while the one it ran on
    is lost under it, up to LOST_CONNECTION_ATTEMPTS runs. Only for what may run twice: a
    read, or a write that knows its own first run (an Idempotency-Key claim by its claim
    id); `may_run_again()`, asked after a loss, says whether this run got too far for that
    (the relay's round once it has claimed its batch, which it may have sent)."""
    attempt = 1
    while True:
        async with pool.acquire() as conn:
            try:
                return await run(conn)
            except DATABASE_DOWN as exc:
                if (
                    not connection_lost(exc)
                    or attempt == LOST_CONNECTION_ATTEMPTS
                    or not may_run_again()
                ):
                    raise
                await forget_pooled_connections(pool, conn)
        attempt += 1


async def forget_pooled_connections(pool: asyncpg.Pool, lost: asyncpg.Connection) -> None:
    """After the connection `lost` (still acquired) was lost under a query: the pool's
    connections are replaced by new ones as they are next acquired (one in use, once it is
    given back). A database restart ends every one of them, and asyncpg finds out only
    when it reads from one: the idle ones would be handed out, and fail, one after the
    other. Not when `lost` was opened before the last replacement: the many losses of one
    restart would each replace the connections opened since, on a database that is back."""
    if not _opened_before_last_replacement(pool, lost):
        await pool.expire_connections()


def _opened_before_last_replacement(pool: asyncpg.Pool, conn: asyncpg.Connection) -> bool:
    # asyncpg counts a pool's replacements (its generation) and notes on each connection's
    # holder the count at its opening, but names neither in its API: without them, every
    # loss replaces the connections.
    opened_in = getattr(getattr(conn, "_holder", None), "_generation", None)
    current = getattr(pool, "_generation", None)
    return opened_in is not None and current is not None and opened_in != current


async def create_connection(url: str) -> asyncpg.Connection:
    """A single connection with the service's JSON codecs (CLI commands use one)."""
    conn = await asyncpg.connect(url, timeout=10)
    await _init_connection(conn)
    return conn


class TimedPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose acquire() gives up after `acquire_timeout` seconds unless the caller
    passes its own timeout. asyncpg waits forever by default: with the database down or
    every connection busy, a request would hang instead of answering 503."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        if timeout is None and self.get_idle_size():
            # An idle connection is handed over without waiting, so no deadline is needed.
            return super().acquire()
        return _AcquireWithDeadline(self, self.acquire_timeout if timeout is None else timeout)


class _AcquireWithDeadline:
    """`pool.acquire(timeout=...)` under asyncio.timeout: asyncpg's own deadline runs every
    acquire in a task of its own (wait_for), which under load, when every acquire waits,
    cost more than the rest of the acquire."""

    __slots__ = ("_connection", "_pool", "_timeout")

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: Any = None

    async def _acquire(self) -> Any:
        async with asyncio.timeout(self._timeout):
            # The base class's acquire, awaited without a timeout of its own.
            return await asyncpg.Pool.acquire(self._pool)

    def __await__(self) -> Any:
        return self._acquire().__await__()

    async def __aenter__(self) -> Any:
        self._connection = await self._acquire()
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        connection, self._connection = self._connection, None
        await self._pool.release(connection)


async def create_pool(config: Config) -> asyncpg.Pool:
    # The keyword arguments asyncpg.create_pool would pass, for our Pool subclass.
    pool = await TimedPool(
        config.database_url,
        acquire_timeout=config.db_acquire_timeout,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
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
        command_timeout=config.db_command_timeout,
        # The connect timeout; the wait for a connection is TimedPool's acquire_timeout.
        timeout=config.db_acquire_timeout,
    )
    log.info("database_pool_open", dsn=config.database_url_redacted, max_size=config.db_pool_max)
    return pool


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


async def close_pool(pool: asyncpg.Pool, seconds: float = POOL_CLOSE_SECONDS) -> bool:
    """Closes the pool gracefully, or at once if a connection is still not released (or
    not closed: a database that stops answering) after `seconds`: shutdown must end even
    if some task never gives its connection back. False when it had to close them at once."""
    try:
        async with asyncio.timeout(seconds):
            await pool.close()
    except TimeoutError:
        log.error("database_pool_close_timed_out", seconds=seconds)
        pool.terminate()
        return False
    return True


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
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another instance created it first: when both pass the existence check at
            # once, the loser gets a unique violation on pg_database instead.
            return False
    finally:
        await admin.close()
    log.info("database_created", dsn=redact_url(url))
    return True
