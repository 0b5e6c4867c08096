"""Helpers of the initials/url and order-read tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from service.auth.signing import compute_token, signed_headers
from tests.conftest import EYEZY_KEY

PATH = "/api/v2/initials/url"
MONITERRO_KEY = ("pk_moniterro_1", "sk_moniterro_1_secret")
AUTH_HEADERS = ("x-public-key", "x-date", "x-token")

Post = Callable[..., Awaitable[Any]]


def unique_signed_headers(
    key: tuple[str, str], method: str, path: str, raw: bytes, **overrides: Any
) -> dict[str, str]:
    """signed_headers() with an x-date to the microsecond, so two equal bodies sent in the
    same second are two requests (a whole-second x-date would make the second a replay)."""
    headers = signed_headers(key[0], key[1], method, path, raw, **overrides)
    if "moment" not in overrides:
        x_date = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        headers["x-date"] = x_date
        headers["x-token"] = compute_token(key[1], method, path, x_date, raw)
    return headers


@pytest.fixture
def post_initials(client: Any) -> Post:
    """post_initials(body, key=EYEZY_KEY, **header_overrides) -> response (signed POST)."""

    async def _post(body: Any, key: tuple[str, str] = EYEZY_KEY, **overrides: Any) -> Any:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = unique_signed_headers(key, "POST", PATH, raw, **overrides)
        headers["Content-Type"] = "application/json"
        return await client.post(PATH, data=raw, headers=headers)

    return _post


@pytest.fixture
def get_order(client: Any) -> Post:
    """get_order(order_id, key=EYEZY_KEY) -> response (signed GET, empty body, auth only)."""

    async def _get(order_id: str, key: tuple[str, str] = EYEZY_KEY) -> Any:
        path = f"/api/v3/orders/{order_id}"
        headers = unique_signed_headers(key, "GET", path, b"")
        return await client.get(path, headers={k: headers[k] for k in AUTH_HEADERS})

    return _get


def order_id_of(body: dict[str, Any]) -> str:
    """The order id at the end of the payment-page URL."""
    url: str = body["data"]["url"]
    return url.rsplit("/", 1)[1]
