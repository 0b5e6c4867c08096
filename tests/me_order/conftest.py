"""Fixtures of the Payway-style endpoint's tests: tokens, a valid body, and row counts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import jwt
import pytest

from service.auth.bearer import ORDER_WRITE_SCOPE
from service.config import Config

ME_ORDER_PATH = "/external/api/v1/me/order"
INVOICE_PERIOD = "5cb804811d41c82b5c518ea8"
AUTOGIRO_PERIOD = "5cb804811d41c82b5c518ea9"
CARD_PERIOD = "5cb804811d41c82b5c518eaa"
WEEKEND_PERIOD = "5cb804811d41c82b5c518eb0"  # a period of adeprimo_weekend
ADDRESS = {
    "first_name": "Erik",
    "last_name": "Eriksson",
    "street": "Ekvägen",
    "street_number": "1",
    "staircase": "A",
    "floor": "15",
    "apartment_number": "1501",
    "zip_code": "120 35",
    "city": "Tyresö",
    "country_code": "SE",
}

Token = Callable[..., str]


def order_body(**changes: Any) -> dict[str, Any]:
    """The document's curl example body, with `changes` applied (None removes a field)."""
    body: dict[str, Any] = {
        "product_code": "adeprimo_digital",
        "period_id": INVOICE_PERIOD,
        "start_date": "2019-05-01T00:00:00+00:00",
        "browser_ip": "127.0.0.1",
        "language": "sv-SE",
        "user_agent": (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/60.0.3112.113 Safari/537.36"
        ),
        "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@pytest.fixture
def account() -> str:
    """A customer account of this test alone."""
    return f"customer-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token(config: Config, account: str) -> Token:
    """token(**claim_overrides, key=..., algorithm=...) -> a JWT; a None claim is left out."""

    def _token(key: Any = None, algorithm: str = "HS256", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": account,
            "org": "adeprimo",
            "scope": f"openid {ORDER_WRITE_SCOPE}",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key if key is not None else config.jwt_secret, algorithm)

    return _token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def row_counts(db: asyncpg.Connection) -> Callable[[], Awaitable[dict[str, int]]]:
    """Rows in every table an order writes to."""

    async def _counts() -> dict[str, int]:
        counts: dict[str, int] = {}
        for table in ("orders", "order_items", "outbox", "customers", "idempotency_keys"):
            counts[table] = await db.fetchval(f"SELECT count(*) FROM {table}")
        return counts

    return _counts
