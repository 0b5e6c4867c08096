"""GET /metrics in the Prometheus text format.

With several worker processes (`serve --workers N`) every worker writes its samples to
PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, merges them all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.background import running_in_background
from service.metrics import DB_POOL_IN_USE, DB_POOL_SIZE
from service.state import POOL

routes = web.RouteTableDef()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Pool gauges are sampled this often, so that with several workers every worker's figure
# is recent, not only the one of the worker that answered the scrape.
POOL_SAMPLE_SECONDS = 1.0


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def sample_pool(pool: asyncpg.Pool) -> None:
    size = pool.get_size()
    DB_POOL_SIZE.set(size)
    DB_POOL_IN_USE.set(size - pool.get_idle_size())


def render_metrics() -> bytes:
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    sample_pool(request.app[POOL])
    # Merging the files of many workers reads the disk: keep it off the event loop.
    body = await asyncio.to_thread(render_metrics) if multiprocess_dir() else render_metrics()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def pool_sampler(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: keeps this process's pool gauges fresh between scrapes."""

    async def sample_forever() -> None:
        while True:
            sample_pool(app[POOL])
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    async with running_in_background(sample_forever(), "pool-metrics"):
        yield
