"""CORS on the customer endpoint: off by default; with CORS_ALLOWED_ORIGINS a browser page
of an allowed origin may preflight and read answers, others are refused; merchant
endpoints never answer CORS."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from service.app import create_app
from service.config import Config, ConfigError, load_config
from tests.faults.harness import signed
from tests.me_order.conftest import ME_ORDER_PATH, Token, bearer, order_body

SHOP = "https://shop.example.com"
PREFLIGHT = {
    "Origin": SHOP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
async def shop_client(aiohttp_client: Any, config: Config) -> Any:
    allowed = frozenset({SHOP, "http://localhost:3000"})
    return await aiohttp_client(create_app(replace(config, cors_allowed_origins=allowed)))


async def test_preflight_of_an_allowed_origin(shop_client: Any) -> None:
    response = await shop_client.options(ME_ORDER_PATH, headers=PREFLIGHT)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert response.headers.getall("Vary") == ["Origin"]
    assert "Access-Control-Expose-Headers" not in response.headers
    assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_an_options_request_without_origin_is_no_preflight(shop_client: Any) -> None:
    headers = {"Access-Control-Request-Method": "POST"}
    response = await shop_client.options(ME_ORDER_PATH, headers=headers)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


async def test_an_order_from_an_allowed_origin_is_readable(shop_client: Any, token: Token) -> None:
    headers = {**bearer(token()), "Origin": SHOP}
    response = await shop_client.post(
        ME_ORDER_PATH, data=orjson.dumps(order_body()), headers=headers
    )
    assert response.status == 200, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert response.headers.getall("Vary") == ["Origin"]
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    # Errors are readable too, so the page can show what went wrong.
    refused = await shop_client.post(ME_ORDER_PATH, data=b"{", headers=headers)
    assert refused.status == 400
    assert refused.headers["Access-Control-Allow-Origin"] == SHOP


async def test_another_origin_is_refused(shop_client: Any, token: Token) -> None:
    evil = {**PREFLIGHT, "Origin": "https://evil.example"}
    response = await shop_client.options(ME_ORDER_PATH, headers=evil)
    assert response.status == 403
    body = await response.json()
    assert body["code"] == "origin_not_allowed"
    assert "CORS_ALLOWED_ORIGINS" in body["message"]
    assert "Access-Control-Allow-Origin" not in response.headers
    # The browser would not let that page read an answer either.
    headers = {**bearer(token()), "Origin": "https://evil.example"}
    answer = await shop_client.post(ME_ORDER_PATH, data=b"{", headers=headers)
    assert "Access-Control-Allow-Origin" not in answer.headers
    # Still marked as depending on Origin, so no cache serves it to the shop's page.
    assert answer.headers.getall("Vary") == ["Origin"]


async def test_an_unknown_customer_path_is_404(shop_client: Any) -> None:
    response = await shop_client.options("/external/api/v1/me/nothing", headers=PREFLIGHT)
    assert response.status == 404
    assert (await response.json())["code"] == "route_not_found"


async def test_merchant_endpoints_answer_no_cors(shop_client: Any) -> None:
    response = await shop_client.options("/api/v2/initials/url", headers=PREFLIGHT)
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
    raw = orjson.dumps({"product": {"code": "premium_1m"}})
    headers = {**signed(raw), "Origin": SHOP}
    answer = await shop_client.post("/api/v2/initials/url", data=raw, headers=headers)
    assert answer.status == 200, await answer.text()
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Vary" not in answer.headers


async def test_cors_is_off_by_default(client: Any, token: Token) -> None:
    response = await client.options(ME_ORDER_PATH, headers=PREFLIGHT)
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
    headers = {**bearer(token()), "Origin": SHOP}
    answer = await client.post(ME_ORDER_PATH, data=orjson.dumps(order_body()), headers=headers)
    assert answer.status == 200
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_an_origin_that_is_not_ascii_is_never_echoed(
    aiohttp_server: Any, config: Config
) -> None:
    server = await aiohttp_server(
        create_app(replace(config, cors_allowed_origins=frozenset({"*"})))
    )
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"OPTIONS {ME_ORDER_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        + b"Origin: https://\xff\xfe.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"
    )
    head = (await reader.read()).split(b"\r\n\r\n")[0]
    writer.close()
    assert head.startswith(b"HTTP/1.1 403 "), head
    assert b"Access-Control-Allow-Origin" not in head


async def test_any_origin(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(
        create_app(replace(config, cors_allowed_origins=frozenset({"*"})))
    )
    headers = {**PREFLIGHT, "Origin": "https://anyone.example"}
    response = await client.options(ME_ORDER_PATH, headers=headers)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://anyone.example"


def test_origins_are_read_from_the_environment() -> None:
    raw = "https://Shop.example.com, http://localhost:3000, https://[::1]:8443"
    config = load_config({"CORS_ALLOWED_ORIGINS": raw})
    assert config.cors_allowed_origins == {SHOP, "http://localhost:3000", "https://[::1]:8443"}
    assert load_config({}).cors_allowed_origins == frozenset()


@pytest.mark.parametrize(
    "raw",
    [
        "shop.example.com",
        "https://shop.example.com/",
        "https://shop.example.com:443",
        "https://shop.example.com?",
        "https://*.example.com",
        "https://a b.example",
        "ftp://x.example",
        "*, https://a.b",
    ],
)
def test_a_value_that_is_not_an_origin_stops_the_start(raw: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        load_config({"CORS_ALLOWED_ORIGINS": raw})
