"""`order-service relay`: the relay alone as a process, stopped by SIGTERM, with its own
probes and Prometheus metrics on RELAY_HTTP_PORT."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from service.config import Config
from service.db import with_database
from tests.events.conftest import EventConsumer, PlaceOrders
from tests.support.service_process import ServiceProcess, service_env

Samples = dict[str, float]
PUBLISHED = "order_service_events_published_total"
RELAY_FAMILIES = (
    "order_service_outbox_backlog",
    "order_service_outbox_oldest_unsent_age_seconds",
    "order_service_events_published",
    "order_service_event_publish_failures",
    "order_service_events_unroutable",
)
# What `serve` counts and a relay never does: at 0 on the relay they would read as facts.
NOT_THE_RELAYS = (
    "order_service_http_requests",
    "order_service_http_request_duration_seconds",
    "order_service_orders_created",
    "order_service_order_write_batch_size",
    "order_service_db_pool_size",
)


def _relay_started(event: dict[str, object]) -> bool:
    return event.get("event") == "relay_started"


async def scrape(http: aiohttp.ClientSession) -> tuple[set[str], Samples]:
    """The metric families and the unlabelled samples of one scrape."""
    async with http.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = list(text_string_to_metric_families(await response.text()))
    samples = {s.name: s.value for f in families for s in f.samples if not s.labels}
    return {f.name for f in families}, samples


async def scrape_until(
    http: aiohttp.ClientSession, holds: Callable[[Samples], bool], timeout: float = 10.0
) -> Samples:
    """Scrapes until `holds` is true of the samples (the relay counts a batch once its
    transaction committed, a moment after the consumer may have its events)."""
    deadline = time.monotonic() + timeout
    while True:
        _, samples = await scrape(http)
        if holds(samples):
            return samples
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.05)


async def test_relay_command_publishes_and_stops_on_sigterm(
    placer: PlaceOrders, consumer: EventConsumer, config: Config
) -> None:
    process = await ServiceProcess(["relay"], service_env(config)).start()
    try:
        await process.wait_for_event(_relay_started)
        orders = await placer(5)
        await consumer.wait_for([o.event_id for o in orders])
        process.send_signal(signal.SIGTERM)
        assert await process.wait(15) == 0
        await process.wait_for_event(lambda e: e.get("event") == "relay_stopped")
    finally:
        await process.kill()


async def test_relay_command_serves_its_probes_and_its_metrics(
    placer: PlaceOrders, consumer: EventConsumer, config: Config
) -> None:
    process = await ServiceProcess(["relay"], service_env(config)).start()
    try:
        port = await process.relay_http_port()
        await process.wait_for_event(_relay_started)
        await process.wait_for_event(lambda e: e.get("event") == "broker_connected")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/health/live") as live:
                assert (live.status, await live.json()) == (200, {"status": "ok"})
            async with http.get("/health/ready") as ready:
                assert ready.status == 200
                assert await ready.json() == {
                    "status": "ok",
                    "checks": {"database": "ok", "broker": "ok"},
                }

            families, before = await scrape(http)
            for name in RELAY_FAMILIES:
                assert name in families, name
            for name in NOT_THE_RELAYS:
                assert name not in families, name
            assert before["process_resident_memory_bytes"] > 0
            assert before["process_cpu_seconds_total"] > 0

            orders = await placer(5)
            await consumer.wait_for([o.event_id for o in orders])
            # Published by this process, so counted on its endpoint (not serve's).
            await scrape_until(http, lambda after: after[PUBLISHED] >= before[PUBLISHED] + 5)

        process.send_signal(signal.SIGTERM)
        assert await process.wait(15) == 0
    finally:
        await process.kill()


async def test_relay_metrics_switched_off_leave_its_probes_and_other_paths_answer_json(
    config: Config,
) -> None:
    process = await ServiceProcess(["relay"], service_env(config, METRICS_ENABLED="false")).start()
    try:
        port = await process.relay_http_port()
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/metrics") as metrics:
                assert metrics.status == 404
                body = await metrics.json()
                assert body["error"]["code"] == "route_not_found"
                assert body["meta"]["requestId"] == metrics.headers["X-Request-Id"]
            async with http.post("/health/live") as post:
                assert post.status == 405
                assert post.headers["Allow"] == "GET, HEAD"
                assert (await post.json())["error"]["code"] == "method_not_allowed"
            async with http.get("/health/live") as live:
                assert live.status == 200
        assert await process.stop(15) == 0
    finally:
        await process.kill()


async def test_relay_is_not_ready_while_its_database_does_not_answer(config: Config) -> None:
    missing = with_database(config.database_url, f"order_service_missing_{uuid.uuid4().hex}")
    down = replace(config, database_url=missing)
    process = await ServiceProcess(["relay"], service_env(down)).start()
    try:
        port = await process.relay_http_port()
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/health/ready") as ready:
                assert ready.status == 503
                body = await ready.json()
                assert body["status"] == "unavailable"
                assert body["checks"]["database"] == "down"
                assert "database" in body["failed"]
            async with http.get("/health/live") as live:
                assert live.status == 200  # alive: the relay retries, nothing to restart
        assert await process.stop(15) == 0
    finally:
        await process.kill()


async def test_relay_with_its_broker_unreachable_is_ready_but_degraded(config: Config) -> None:
    # It claims nothing it cannot publish, and the outbox grows: an operator must see why
    # (before, its readiness said ok), but a restart would not help.
    unreachable = replace(config, amqp_url="amqp://guest:guest@127.0.0.1:1/")
    process = await ServiceProcess(["relay"], service_env(unreachable)).start()
    try:
        port = await process.relay_http_port()
        await process.wait_for_event(_relay_started)
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
            http.get("/health/ready") as ready,
        ):
            assert ready.status == 200
            assert await ready.json() == {
                "status": "degraded",
                "checks": {"database": "ok", "broker": "down"},
                "failed": ["broker"],
            }
        assert await process.stop(15) == 0
    finally:
        await process.kill()


async def test_relay_http_port_off_opens_no_listener(config: Config) -> None:
    process = await ServiceProcess(["relay"], service_env(config, RELAY_HTTP_PORT="off")).start()
    try:
        started = await process.wait_for_event(_relay_started)
        # The listener, when there is one, is up before the relay starts.
        before_start = process.events[: process.events.index(started)]
        assert not [e for e in before_start if e.get("event") == "relay_http_serving"]
        assert await process.stop(15) == 0
    finally:
        await process.kill()


async def test_a_taken_relay_http_port_stops_the_relay_before_it_starts(config: Config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = await ServiceProcess(["relay"], service_env(config, RELAY_HTTP_PORT=port)).start()
        try:
            assert await process.wait(15) == 1
        finally:
            await process.kill()
    failed = [e for e in process.events if e.get("event") == "command_failed"]
    assert failed, process.output()
    assert "OSError" in failed[0]["error"]
    assert not [e for e in process.events if _relay_started(e)]
