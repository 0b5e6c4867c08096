"""Signed-request failures of initials/url and GET /api/v3/orders: 401 with a code per case,
409 for a replayed request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from multidict import CIMultiDict

from service.auth.signing import signed_headers
from tests.conftest import EYEZY_KEY, EYEZY_REVOKED_KEY
from tests.initials.conftest import AUTH_HEADERS, PATH, Post, order_id_of, unique_signed_headers

BODY = {"product": {"code": "premium_1m"}}
RAW = orjson.dumps(BODY)


def _headers(key: tuple[str, str] = EYEZY_KEY, **overrides: Any) -> dict[str, str]:
    headers = unique_signed_headers(key, "POST", PATH, RAW, **overrides)
    headers["Content-Type"] = "application/json"
    return headers


def _without(name: str) -> dict[str, str]:
    headers = _headers()
    del headers[name]
    return headers


def _with(name: str, value: str) -> dict[str, str]:
    return {**_headers(), name: value}


def _twice(name: str, second: str) -> CIMultiDict[str]:
    """Valid signed headers, and `name` once more after the valid one."""
    headers = CIMultiDict(_headers())
    headers.add(name, second)
    return headers


DUPLICATE = "duplicate_authentication_header"

# (case, headers, code)
AUTH_FAILURES: list[tuple[str, Any, str]] = [
    ("missing x-public-key", lambda: _without("x-public-key"), "missing_authentication"),
    ("missing x-date", lambda: _without("x-date"), "missing_authentication"),
    ("missing x-token", lambda: _without("x-token"), "missing_authentication"),
    ("x-public-key twice", lambda: _twice("x-public-key", "pk_moniterro_1"), DUPLICATE),
    ("x-date twice", lambda: _twice("x-date", "2020-01-01T00:00:00Z"), DUPLICATE),
    ("x-token twice", lambda: _twice("x-token", "0" * 64), DUPLICATE),
    ("malformed x-date", lambda: _with("x-date", "Mon, 23 Nov 2026 13:00:00"), "invalid_x_date"),
    ("x-date without offset", lambda: _with("x-date", "2026-11-23T13:00:00"), "invalid_x_date"),
    (
        "stale x-date",
        lambda: _headers(moment=datetime.now(UTC) - timedelta(seconds=400)),
        "request_expired",
    ),
    (
        "x-date in the future",
        lambda: _headers(moment=datetime.now(UTC) + timedelta(seconds=400)),
        "request_expired",
    ),
    ("unknown key", lambda: _headers(key=("pk_nobody", "sk_nobody_secret")), "unknown_public_key"),
    ("revoked key", lambda: _headers(key=EYEZY_REVOKED_KEY), "revoked_public_key"),
    ("wrong secret", lambda: _headers(key=(EYEZY_KEY[0], "not-the-secret")), "invalid_signature"),
    ("garbage token", lambda: _with("x-token", "0" * 64), "invalid_signature"),
    (
        "another key's token",
        lambda: {**_headers(key=("pk_eyezy_2", "sk_eyezy_2_secret")), "x-public-key": EYEZY_KEY[0]},
        "invalid_signature",
    ),
]


@pytest.mark.parametrize(
    ("make_headers", "code"), [c[1:] for c in AUTH_FAILURES], ids=[c[0] for c in AUTH_FAILURES]
)
async def test_auth_failure(
    client: Any, db: asyncpg.Connection, make_headers: Any, code: str
) -> None:
    before = await db.fetchval("SELECT count(*) FROM orders")
    response = await client.post(PATH, data=RAW, headers=make_headers())
    assert response.status == 401
    payload = await response.json()
    assert payload["error"]["code"] == code
    assert payload["meta"]["type"] == "error"
    assert await db.fetchval("SELECT count(*) FROM orders") == before


async def test_token_covers_the_body(client: Any) -> None:
    response = await client.post(PATH, data=RAW.replace(b"premium", b"basic__"), headers=_headers())
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_signature"


async def test_token_covers_the_path(client: Any) -> None:
    headers = _headers()
    response = await client.post(PATH + "?x=1", data=RAW, headers=headers)
    assert (await response.json())["error"]["code"] == "invalid_signature"


async def test_replayed_request_creates_no_second_order(
    client: Any, db: asyncpg.Connection
) -> None:
    headers = _headers(source_id="replay-test")
    first = await client.post(PATH, data=RAW, headers=headers)
    assert first.status == 200
    again = await client.post(PATH, data=RAW, headers=headers)
    assert again.status == 409
    error = (await again.json())["error"]
    assert error["code"] == "request_replayed"
    # Named, so that a merchant whose first answer was lost can read the order.
    assert f"order {order_id_of(await first.json())};" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source_id = 'replay-test'") == 1


async def test_a_token_in_upper_case_hex_is_the_same_token(
    client: Any, db: asyncpg.Connection
) -> None:
    headers = _headers(source_id="upper-case-test")
    upper = {**headers, "x-token": headers["x-token"].upper()}
    first = await client.post(PATH, data=RAW, headers=upper)
    assert first.status == 200, await first.text()
    # The lower-case original is a replay of it, not a second order.
    again = await client.post(PATH, data=RAW, headers=headers)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "request_replayed"
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source_id = 'upper-case-test'") == 1


async def test_idempotency_key_retry_gets_the_same_order(
    client: Any, db: asyncpg.Connection
) -> None:
    headers = {**_headers(source_id="idem-test"), "Idempotency-Key": "initials-idem-1"}
    first = await client.post(PATH, data=RAW, headers=headers)
    assert first.status == 200
    again = await client.post(PATH, data=RAW, headers=headers)
    assert again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == await first.json()
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source_id = 'idem-test'") == 1


async def test_signed_get_failures(client: Any, get_order: Any, post_initials: Post) -> None:
    order_id = order_id_of(await (await post_initials(BODY)).json())
    path = f"/api/v3/orders/{order_id}"
    good = unique_signed_headers(EYEZY_KEY, "GET", path, b"")
    auth = {k: good[k] for k in AUTH_HEADERS}
    assert (await client.get(path, headers=auth)).status == 200

    cases = {
        "missing_authentication": {k: v for k, v in auth.items() if k != "x-token"},
        "invalid_x_date": {**auth, "x-date": "yesterday"},
        "request_expired": {
            k: v
            for k, v in signed_headers(
                *EYEZY_KEY, "GET", path, b"", moment=datetime.now(UTC) - timedelta(seconds=400)
            ).items()
            if k in auth
        },
        "unknown_public_key": {**auth, "x-public-key": "pk_nobody"},
        "revoked_public_key": {
            k: v
            for k, v in unique_signed_headers(EYEZY_REVOKED_KEY, "GET", path, b"").items()
            if k in auth
        },
        "invalid_signature": {**auth, "x-token": "f" * 64},
    }
    for code, headers in cases.items():
        response = await client.get(path, headers=headers)
        assert response.status == 401, code
        assert (await response.json())["error"]["code"] == code
