"""Running the service: migrations first, then the HTTP server with graceful shutdown."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from service.app import create_app
from service.config import Config
from service.migrations import migrate

log = structlog.get_logger(__name__)


def serve(config: Config, *, workers: int | None = None, migrate_first: bool = True) -> int:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    if migrate_first and config.migrate_on_start:
        asyncio.run(migrate(config.database_url))
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        access_log=None,
        shutdown_timeout=config.shutdown_timeout,
        print=None,
        handle_signals=True,
    )
    return 0
