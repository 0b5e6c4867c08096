"""The one place that wires the application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from events.broker import Broker
from service.catalog import CatalogCache
from service.config import Config
from service.db import create_pool
from service.handlers import health, initials, me_order, oneclick, orders
from service.middleware import request_middleware
from service.state import BROKER, CATALOG, CONFIG, POOL


async def _database(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[CONFIG])
    app[POOL] = pool
    try:
        yield
    finally:
        await pool.close()


async def _catalog(app: web.Application) -> AsyncIterator[None]:
    cache = CatalogCache()
    app[CATALOG] = cache
    async with cache.follow(app[POOL], app[CONFIG].database_url):
        yield


async def _broker(app: web.Application) -> AsyncIterator[None]:
    broker = Broker(app[CONFIG].amqp_url)
    app[BROKER] = broker
    broker.start()
    try:
        yield
    finally:
        await broker.close()


def create_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=config.request_body_limit,
    )
    app[CONFIG] = config
    app.cleanup_ctx.extend([_database, _catalog, _broker])
    for module in (health, initials, oneclick, orders, me_order):
        app.router.add_routes(module.routes)
    return app
