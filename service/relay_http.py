"""The HTTP side of `order-service relay` (the outbox relay as a process of its own): its
probes and its Prometheus metrics on HOST:RELAY_HTTP_PORT, for an orchestrator and a
scraper. `serve` answers the same paths on PORT itself (service/handlers/).

- GET /health/live: 200 {"status": "ok"} while the process answers.
- GET /health/ready: 200 while the database answers `SELECT 1` within DB_ACQUIRE_TIMEOUT
  (status "degraded" while the relay's broker connection is down), 503 (status
  "unavailable", failed ["database"]) otherwise; the body shaped as `serve`'s (status,
  checks, failed). run_relay_forever hands its Broker over through RelayProbes.
- GET /metrics (unless METRICS_ENABLED=false): service.metrics.relay_registry().
- Any other path or method: the JSON error `serve` gives (route_not_found,
  method_not_allowed), not aiohttp's plain text.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from events.broker import Broker
from service.config import Config
from service.db import close_pool, create_pool
from service.handlers.health import database_answers
from service.metrics import relay_registry
from service.middleware import (
    REQUEST_ID_HEADER,
    error_for_http_exception,
    new_request_id,
    render_error,
)

log = structlog.get_logger(__name__)

CONFIG = web.AppKey("config", Config)
# The probe's own connection (opened at the first probe, then kept): the relay's pool is
# not reachable from here (events/relay.py's run_relay_forever holds it).
PROBE_POOL = web.AppKey("probe_pool", asyncpg.Pool)
METRICS = web.AppKey("metrics", CollectorRegistry)
PROBES: web.AppKey[RelayProbes] = web.AppKey("probes")
# Every answer is immediate; a scrape still in flight at shutdown gets this long.
SHUTDOWN_SECONDS = 1.0

routes = web.RouteTableDef()


@routes.get("/health/live")
async def live(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@dataclass
class RelayProbes:
    """What the relay's readiness reports besides the database: its broker connection,
    once run_relay_forever has made it (down until then)."""

    broker: Broker | None = None

    def broker_connected(self) -> bool:
        return self.broker is not None and self.broker.connected


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    """503 while the database does not answer (the relay can claim nothing); 200
    `degraded` while the broker connection is down (it publishes nothing meanwhile, and
    the outbox grows, but a restart would not help), as `serve`'s readiness says it."""
    app = request.app
    database_up = await database_answers(app[PROBE_POOL], app[CONFIG].db_acquire_timeout)
    checks = {
        "database": "ok" if database_up else "down",
        "broker": "ok" if app[PROBES].broker_connected() else "down",
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    if not database_up:
        status, http_status = "unavailable", 503
    else:
        status, http_status = ("degraded" if failed else "ok"), 200
    body: dict[str, object] = {"status": status, "checks": checks}
    if failed:
        body["failed"] = failed
    return web.json_response(body, status=http_status)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


async def _probe_pool(app: web.Application) -> AsyncIterator[None]:
    # No connection until the first readiness probe: the relay starts without the database.
    app[PROBE_POOL] = await create_pool(replace(app[CONFIG], db_pool_min=0, db_pool_max=1))
    try:
        yield
    finally:
        await close_pool(app[PROBE_POOL])


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (no such route, a method not taken) in `serve`'s JSON format."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        request_id = new_request_id()
        response = render_error(request, error_for_http_exception(exc), request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


def create_relay_http_app(config: Config, probes: RelayProbes) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[CONFIG] = config
    app[PROBES] = probes
    app.cleanup_ctx.append(_probe_pool)
    app.router.add_routes(routes)
    if config.metrics_enabled:
        app[METRICS] = relay_registry()
        app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def relay_http(config: Config, probes: RelayProbes) -> AsyncIterator[None]:
    """Serves the relay's probes and metrics for the body; with RELAY_HTTP_PORT=off, only
    runs the body. The port is bound before the body starts, so a port that cannot be
    had stops the command (OSError) before the relay starts."""
    if config.relay_http_port is None:
        yield
        return
    runner = web.AppRunner(
        create_relay_http_app(config, probes), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.relay_http_port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else config.relay_http_port
        log.info(
            "relay_http_serving",
            host=config.host,
            port=port,
            metrics=config.metrics_enabled,
        )
        yield
    finally:
        await runner.cleanup()
