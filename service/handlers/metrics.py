"""GET /metrics in the Prometheus text format.

With several worker processes (`serve --workers N`) every worker writes its samples to
PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, merges them all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from functools import partial

import asyncpg
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Metric, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.background import running_in_background
from service.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, RELAY_METRICS
from service.state import CONFIG, POOL

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


class _Without:
    """A collector's metric families less the named ones."""

    def __init__(self, source: Collector, names: frozenset[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        return (family for family in self._source.collect() if family.name not in self._names)


# The relay's families: shown only by an instance that runs a relay. Elsewhere (serve with
# RELAY_ENABLED=false, its relay a process of its own) they would read 0, as if the
# outbox were empty, and keep an absent() alert on a missing relay from ever firing.
RELAY_FAMILIES = frozenset(family.name for metric in RELAY_METRICS for family in metric.describe())


def render_metrics(*, with_relay: bool = True) -> bytes:
    source: Collector
    if multiprocess_dir() is None:
        source = REGISTRY
    else:
        source = CollectorRegistry()
        MultiProcessCollector(source)  # type: ignore[no-untyped-call]
    if not with_relay:
        source = _Without(source, RELAY_FAMILIES)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(source)
    return generate_latest(registry)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    sample_pool(request.app[POOL])
    render = partial(render_metrics, with_relay=request.app[CONFIG].instance_runs_relay)
    # Merging the files of many workers reads the disk: keep it off the event loop.
    body = await asyncio.to_thread(render) if multiprocess_dir() else render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def pool_sampler(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: keeps this process's pool gauges fresh between scrapes."""

    async def sample_forever() -> None:
        while True:
            sample_pool(app[POOL])
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    async with running_in_background(sample_forever(), "pool-metrics"):
        yield
