"""Fixtures of the API-contract tests: Idempotency-Key requests to the create endpoints and
counts of what they wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from service.auth.bearer import mint_token
from service.auth.signing import signed_headers
from service.config import Config
from tests.conftest import EYEZY_KEY

INITIALS_PATH = "/api/v2/initials/url"
ME_ORDER_PATH = "/external/api/v1/me/order"
MONITERRO_KEY = ("pk_moniterro_1", "sk_moniterro_1_secret")
ME_ORDER_BODY: dict[str, Any] = {
    "product_code": "adeprimo_digital",
    "period_id": "5cb804811d41c82b5c518ea8",
    "browser_ip": "127.0.0.1",
    "language": "sv-SE",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) contract-tests",
    "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One signed request's exact bytes and headers, so a test can send it again as is."""

    path: str
    raw: bytes
    headers: dict[str, str]


def signed(
    path: str,
    body: Any,
    *,
    key: tuple[str, str] = EYEZY_KEY,
    idempotency_key: str | None = None,
    seconds_later: int = 0,
    raw: bytes | None = None,
) -> SignedRequest:
    """A request signed now (plus `seconds_later`: a retry signed anew gets a new x-date).
    Its body is `body` serialised by orjson, or `raw` as given."""
    if raw is None:
        raw = orjson.dumps(body)
    moment = datetime.now(UTC) + timedelta(seconds=seconds_later)
    headers = signed_headers(key[0], key[1], "POST", path, raw, moment=moment)
    headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return SignedRequest(path, raw, headers)


async def send(client: Any, request: SignedRequest) -> Any:
    return await client.post(request.path, data=request.raw, headers=request.headers)


def initials_body(sequence: str, **changes: Any) -> dict[str, Any]:
    """A valid initials order; its `sequence` lets a test count the orders it made."""
    return {"product": {"code": "premium_1m"}, "sequence": sequence, **changes}


@pytest.fixture
def sequence() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def idempotency_key() -> str:
    return f"key-{uuid.uuid4()}"


@pytest.fixture
def account() -> str:
    return f"customer-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bearer(config: Config) -> Callable[[str], dict[str, str]]:
    """bearer(account) -> the headers of a customer of adeprimo with the order scope."""

    def _bearer(account: str) -> dict[str, str]:
        token = mint_token(config, sub=account, org="adeprimo")
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    return _bearer


@dataclass(frozen=True, slots=True)
class Written:
    orders: int
    events: int


@pytest.fixture
def written_by_sequence(db: asyncpg.Connection) -> Callable[[str], Awaitable[Written]]:
    """Orders with this `sequence`, and outbox events of those orders."""

    async def _written(sequence: str) -> Written:
        row = await db.fetchrow(
            """SELECT (SELECT count(*) FROM orders WHERE sequence = $1) AS orders,
                      (SELECT count(*) FROM outbox WHERE aggregate_id IN
                          (SELECT id FROM orders WHERE sequence = $1)) AS events""",
            sequence,
        )
        assert row is not None
        return Written(row["orders"], row["events"])

    return _written


@pytest.fixture
def written_by_account(db: asyncpg.Connection) -> Callable[[str], Awaitable[Written]]:
    async def _written(account: str) -> Written:
        row = await db.fetchrow(
            """SELECT (SELECT count(*) FROM orders WHERE customer_account = $1) AS orders,
                      (SELECT count(*) FROM outbox WHERE aggregate_id IN
                          (SELECT id FROM orders WHERE customer_account = $1)) AS events""",
            account,
        )
        assert row is not None
        return Written(row["orders"], row["events"])

    return _written


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool for calling service functions that take one (pruning)."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as created:
        yield created
