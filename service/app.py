"""The one place that wires the application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from events.broker import CLOSE_TIMEOUT, Broker
from events.outbox_wakeup import NOTIFY_TIMEOUT, OutboxWakeup
from events.relay import ABANDON_BATCH_AFTER, OutboxRelay
from service import idempotency
from service.auth.bearer import VerifiedTokens
from service.background import STOP_SECONDS
from service.catalog import CatalogCache
from service.cleanup_deadline import CleanupDeadline
from service.config import Config
from service.db import POOL_CLOSE_SECONDS, close_pool, create_pool
from service.handlers import asyncapi, docs, health, initials, me_order, metrics, oneclick, orders
from service.middleware import request_middleware
from service.order_writer import STANDBY_AFTER, OrderWriter
from service.state import (
    BROKER,
    CATALOG,
    CLEANUP_DEADLINE,
    CONFIG,
    ORDER_WRITER,
    OUTBOX_WAKEUP,
    POOL,
    RELAY,
    VERIFIED_TOKENS,
)
from service.zstd_window import bound_zstd_window

# What the cleanup contexts had to give up on the way ("database_pool": connections closed
# at once after the pool's close timed out; "relay_batch": the relay's batch in flight;
# "order_batch": an order writer's cancelled batch that never rolled back;
# "broker_connection": a close RabbitMQ did not answer): nothing is lost, but the stop was
# not clean, and the worker exits 1.
CLEANUP_ABANDONED = web.AppKey("cleanup_abandoned", list[str])

# Under the worker's clean-up deadline (service.cleanup_deadline), each step keeps this
# much for every step after it: the cleanup contexts registered before its own, which stop
# after it, all of them able to wait for PostgreSQL or RabbitMQ.
CLEANUP_STEP_SHARE_SECONDS = 0.25


def _stop_within(app: web.Application, step: object, own: float) -> Callable[[], float]:
    """What the cleanup context `step` may take to stop: its own limit, or less."""
    deadline = app[CLEANUP_DEADLINE]
    leaving = app.cleanup_ctx.index(step) * CLEANUP_STEP_SHARE_SECONDS
    return lambda: deadline.limit(own, leaving=leaving)


async def _database(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[CONFIG])
    app[POOL] = pool
    try:
        yield
    finally:
        if not await close_pool(pool, _stop_within(app, _database, POOL_CLOSE_SECONDS)()):
            app[CLEANUP_ABANDONED].append("database_pool")


# What the order writers may take, on shutdown, to finish the batches they hold.
ORDER_WRITER_STOP_SECONDS = 3.0
# Pool connections the standby order writers leave to the rest of the process, however
# many of them are held up: the relay's two batches in flight, and one for Idempotency-Key
# claims, health checks and NOTIFY.
CONNECTIONS_BESIDES_ORDER_WRITERS = 3


def standby_writers(config: Config) -> int:
    """Standby order writers: what DB_POOL_MAX leaves beside the writers, at least one."""
    spare = config.db_pool_max - config.writers_per_worker - CONNECTIONS_BESIDES_ORDER_WRITERS
    return max(1, spare)


async def _order_writer(app: web.Application) -> AsyncIterator[None]:
    # After _database, so that it stops first: its last batches still find the pool open.
    config = app[CONFIG]
    writer = OrderWriter(
        app[POOL],
        writers=config.writers_per_worker,
        max_batch=config.writer_batch_max,
        queue_timeout=config.db_acquire_timeout,
        drain_timeout=ORDER_WRITER_STOP_SECONDS,
        standby_after=STANDBY_AFTER,
        standbys=standby_writers(config),
    )
    app[ORDER_WRITER] = writer
    stop_within = _stop_within(app, _order_writer, ORDER_WRITER_STOP_SECONDS)
    async with writer.running(stop_within=stop_within):
        yield
    if writer.batch_abandoned:
        app[CLEANUP_ABANDONED].append("order_batch")


async def _catalog(app: web.Application) -> AsyncIterator[None]:
    cache = CatalogCache()
    app[CATALOG] = cache
    stop_within = _stop_within(app, _catalog, 2 * STOP_SECONDS)
    async with cache.follow(app[POOL], app[CONFIG].database_url, stop_within=stop_within):
        yield


async def _broker(app: web.Application) -> AsyncIterator[None]:
    broker = Broker(app[CONFIG].amqp_url)
    app[BROKER] = broker
    broker.start()
    try:
        yield
    finally:
        if not await broker.close(_stop_within(app, _broker, CLOSE_TIMEOUT + 1.0)()):
            app[CLEANUP_ABANDONED].append("broker_connection")


async def _idempotency_pruning(app: web.Application) -> AsyncIterator[None]:
    pool, ttl_seconds = app[POOL], app[CONFIG].idempotency_ttl_seconds
    stop_within = _stop_within(app, _idempotency_pruning, 2 * STOP_SECONDS)
    async with idempotency.pruning(pool, ttl_seconds, stop_within=stop_within):
        yield


# The relay stops after the HTTP server has drained its requests; together they must fit
# in the shutdown budget of a worker (SHUTDOWN_TIMEOUT plus a few seconds of clean-up).
RELAY_STOP_SECONDS = 3.0


async def _relay(app: web.Application) -> AsyncIterator[None]:
    # Publishes the outbox on the shared connection; on shutdown it stops after its batch.
    relay = OutboxRelay(app[CONFIG], app[POOL], app[BROKER])
    app[RELAY] = relay
    first_wait = min(app[CONFIG].shutdown_timeout, RELAY_STOP_SECONDS)
    stop_within = _stop_within(app, _relay, first_wait + 2 * ABANDON_BATCH_AFTER)
    async with relay.running(first_wait, stop_within=stop_within):
        yield
    if relay.batch_abandoned:
        app[CLEANUP_ABANDONED].append("relay_batch")


async def _outbox_wakeup(app: web.Application) -> AsyncIterator[None]:
    # After _relay, so that it stops first and its last NOTIFY still finds the pool open.
    wakeup = OutboxWakeup(app[POOL], app.get(RELAY))
    app[OUTBOX_WAKEUP] = wakeup
    # Asked for each of its two phases: the task's stop, then the NOTIFY still owed.
    stop_within = _stop_within(app, _outbox_wakeup, max(2 * STOP_SECONDS, NOTIFY_TIMEOUT))
    async with wakeup.running(stop_within=stop_within):
        yield


def create_app(config: Config) -> web.Application:
    bound_zstd_window()
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=config.request_body_limit,
    )
    app[CONFIG] = config
    app[CLEANUP_ABANDONED] = []
    app[CLEANUP_DEADLINE] = CleanupDeadline()
    app[VERIFIED_TOKENS] = VerifiedTokens(config)
    app.cleanup_ctx.extend([_database, _order_writer, _catalog])
    if config.instance_runs_relay:
        # Only for the relay (this process's, or its instance's first worker's, which the
        # readiness of every worker reports): with RELAY_ENABLED=false an `order-service
        # relay` publishes, and this process has no use for RabbitMQ.
        app.cleanup_ctx.append(_broker)
    app.cleanup_ctx.append(_idempotency_pruning)
    if config.relay_enabled:
        app.cleanup_ctx.append(_relay)
    app.cleanup_ctx.append(_outbox_wakeup)
    if config.metrics_enabled:
        app.cleanup_ctx.append(metrics.pool_sampler)
        app.router.add_routes(metrics.routes)
    for module in (health, initials, oneclick, orders, me_order, asyncapi, docs):
        app.router.add_routes(module.routes)
    app.on_startup.append(docs.build_openapi_document)
    return app
