"""Request body limit (64 KiB by default): 413 in the error format of the endpoint's
family, naming the configured limit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from service.config import Config
from tests.faults.harness import signed
from tests.operations.conftest import ME_ORDER_BODY, ME_ORDER_PATH

LIMIT = 64 * 1024


def oversized(body: dict[str, Any]) -> bytes:
    return orjson.dumps({**body, "metaData": {"padding": "x" * LIMIT}})


async def test_merchant_endpoint_answers_413_in_merchant_format(client: Any) -> None:
    raw = oversized({"product": {"code": "basic_1m"}})
    response = await client.post("/api/v2/initials/url", data=raw, headers=signed(raw))
    assert response.status == 413
    body = await response.json()
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["message"] == "Request body is larger than the limit of 64 KiB"
    assert body["meta"]["type"] == "error"
    assert body["meta"]["requestId"] == response.headers["X-Request-ID"]


async def test_payway_endpoint_answers_413_in_payway_format(
    client: Any, customer_token: str
) -> None:
    raw = oversized(ME_ORDER_BODY)
    headers = {"Authorization": f"Bearer {customer_token}", "Content-Type": "application/json"}
    response = await client.post(ME_ORDER_PATH, data=raw, headers=headers)
    assert response.status == 413
    body = await response.json()
    assert body["code"] == "payload_too_large"
    assert "message" in body
    assert "error" not in body


async def test_a_body_just_under_the_limit_is_read(client: Any) -> None:
    raw = orjson.dumps({"product": {"code": "basic_1m"}, "metaData": {"p": ""}})
    raw = raw.replace(b'"p":""', b'"p":"' + b"x" * (LIMIT - len(raw) - 1) + b'"')
    assert len(raw) == LIMIT - 1
    response = await client.post("/api/v2/initials/url", data=raw, headers=signed(raw))
    assert response.status != 413


@pytest.mark.parametrize(("limit", "named"), [(2048, "2 KiB"), (1500, "1500 bytes")])
async def test_the_413_names_the_configured_limit(
    aiohttp_client: Any, config: Config, customer_token: str, limit: int, named: str
) -> None:
    from service.app import create_app

    client = await aiohttp_client(create_app(replace(config, request_body_limit=limit)))
    raw = orjson.dumps({**ME_ORDER_BODY, "metaData": {"padding": "x" * limit}})
    headers = {"Authorization": f"Bearer {customer_token}", "Content-Type": "application/json"}
    response = await client.post(ME_ORDER_PATH, data=raw, headers=headers)
    assert response.status == 413
    assert (await response.json())["message"] == (
        f"Request body is larger than the limit of {named}"
    )
