from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.app import create_app
from service.config import Config


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


async def test_unknown_route_is_json(client: Any) -> None:
    response = await client.get("/nope")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "route_not_found"
    assert body["meta"]["type"] == "error"
