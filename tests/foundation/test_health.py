from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from service.app import create_app
from service.config import Config
from service.state import BROKER


async def test_live_answers_ok(client: Any) -> None:
    response = await client.get("/health/live")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_names_the_database_when_it_is_unreachable(
    aiohttp_client: Any, config: Config
) -> None:
    # Port 1 refuses connections at once; the pool is lazy so the app still starts.
    broken = replace(
        config,
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        db_pool_min=0,
        db_acquire_timeout=0.5,
    )
    app = create_app(broken)
    client = await aiohttp_client(app)
    response = await client.get("/health/ready")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["database"] == "down"
    assert "database" in body["failed"]


async def test_ready_when_the_database_and_the_broker_answer(client: Any) -> None:
    # The broker connection is opened in the background at start.
    async with asyncio.timeout(10):
        await client.app[BROKER].wait_connected()
    response = await client.get("/health/ready")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "catalog": "ok", "broker": "ok"},
    }


async def test_ready_but_degraded_while_only_the_broker_is_down(
    aiohttp_client: Any, config: Config
) -> None:
    # Orders are still taken (their events wait in the outbox), so the instance must stay
    # in the load balancer: 200, with the broker named.
    no_broker = replace(config, amqp_url="amqp://guest:guest@127.0.0.1:1/")
    client = await aiohttp_client(create_app(no_broker))
    response = await client.get("/health/ready")
    assert response.status == 200
    assert await response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "catalog": "ok", "broker": "down"},
        "failed": ["broker"],
    }


async def test_without_a_relay_in_the_instance_the_broker_is_not_this_processs_concern(
    aiohttp_client: Any, config: Config
) -> None:
    # RELAY_ENABLED=false: an `order-service relay` publishes and reports its broker. This
    # process opened a connection only to report it, and said degraded when it was down.
    no_relay = replace(config, relay_enabled=False, amqp_url="amqp://guest:guest@127.0.0.1:1/")
    client = await aiohttp_client(create_app(no_relay))
    assert BROKER not in client.app
    response = await client.get("/health/ready")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "catalog": "ok"},
    }


async def test_unknown_route_is_json(client: Any) -> None:
    response = await client.get("/nope")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "route_not_found"
    assert body["meta"]["type"] == "error"
