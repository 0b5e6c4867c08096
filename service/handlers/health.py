"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiohttp import web

from service.db import LOST_CONNECTION_ATTEMPTS, connection_lost, forget_pooled_connections
from service.middleware import json_dumps
from service.sql import queries
from service.state import BROKER, CATALOG, CONFIG, POOL

routes = web.RouteTableDef()


@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=json_dumps)


async def database_answers(pool: asyncpg.Pool, seconds: float) -> bool:
    """The database answers `SELECT 1` on a connection of `pool` within `seconds`; on
    another one when the first was lost under it (a restart ends every pooled connection,
    and asyncpg finds out only when one is used), up to LOST_CONNECTION_ATTEMPTS.

    The connection goes back within the same deadline: asyncpg gives back one whose query
    was cut off only once the server has settled the cancellation, which a database that
    stopped answering never does (the probe took its command timeout, 6 s, beyond), so
    past the deadline it is closed instead.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    for _ in range(LOST_CONNECTION_ATTEMPTS):
        answered = await _ping(pool, deadline)
        if answered is not None:
            return answered
    return False


async def _ping(pool: asyncpg.Pool, deadline: float) -> bool | None:
    """Whether the database answered on one connection by `deadline`; None when that
    connection was lost under the ping, which a new one may not be."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline):
            conn = await pool.acquire()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
    try:
        async with asyncio.timeout_at(deadline):
            await conn.fetchval(queries.ping)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        if not connection_lost(exc):
            return False
        with contextlib.suppress(Exception):
            await forget_pooled_connections(pool, conn)
        return None
    finally:
        with contextlib.suppress(Exception):
            await pool.release(conn, timeout=max(0.0, deadline - loop.time()))
    return True


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    """200 while the instance can take orders, which needs the database and the catalog
    read from it: with the broker down, orders are taken and their events wait in the
    outbox ("degraded"). Taking such an instance out of the load balancer would refuse
    orders it could take."""
    app = request.app
    database_up = await database_answers(app[POOL], app[CONFIG].db_acquire_timeout)
    checks = {
        "database": "ok" if database_up else "down",
        "catalog": "ok" if app[CATALOG].loaded else "down",
    }
    broker = app.get(BROKER)
    if broker is not None:  # none with RELAY_ENABLED=false: `order-service relay` reports it
        checks["broker"] = "ok" if broker.connected else "down"
    failed = [name for name, state in checks.items() if state != "ok"]
    if checks["database"] != "ok" or checks["catalog"] != "ok":
        status, http_status = "unavailable", 503
    else:
        status, http_status = ("degraded" if failed else "ok"), 200
    body: dict[str, object] = {"status": status, "checks": checks}
    if failed:
        body["failed"] = failed
    return web.json_response(body, status=http_status, dumps=json_dumps)
