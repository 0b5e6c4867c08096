"""Fixtures of the oneclick tests: the demo catalog's ids, and a client helper that signs
and posts a oneclick order."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from tests.conftest import EYEZY_KEY

MONITERRO_KEY = ("pk_moniterro_1", "sk_moniterro_1_secret")

ANN = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"
BOB = "4b0e2d1c-6f5a-4a99-8243-af7e3b6c5d88"
CARL = "6d2a4f3e-8b7c-4cbb-a465-c1a05d8e7faa"  # moniterro's buyer

ANN_PREMIUM_SUB = "0d6a8f7e-2b1c-4c55-8e0f-6b3a9d2e1f44"  # premium_1m, tier 2
ANN_BASIC_SUB = "1e7b9a8f-3c2d-4d66-9f10-7c4b0e3f2a55"  # basic_1m, tier 1
ANN_ULTIMATE_SUB = "2f8c0b9a-4d3e-4e77-a021-8d5c1f4a3b66"  # ultimate_1m, tier 3
ANN_CANCELLED_SUB = "3a9d1c0b-5e4f-4f88-b132-9e6d2a5b4c77"  # premium_1y, cancelled
BOB_BASIC_SUB = "5c1f3e2d-7a6b-4baa-9354-b08f4c7d6e99"
CARL_FAMILY_SUB = "7e3b5a4f-9c8d-4dcc-b576-d2b16e9f80bb"  # moniterro


def oneclick_path(buyer_id: str) -> str:
    return f"/api/v3/buyers/{buyer_id}/oneclick"


def body_for(*products: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid body for ann's active card, desktop, with the given product entries.

    The default metaData makes every body unique: two equal bodies signed in the same
    second carry the same x-token, and the second would be refused as a replay.
    """
    return {
        "isMobile": False,
        "chargeMethodId": "cm_ann_visa",
        "products": list(products),
        "metaData": {"test": uuid.uuid4().hex},
    } | fields


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    token: str

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.body["error"]
        return error


Post = Callable[..., Awaitable[Answer]]


@pytest.fixture
def post_oneclick(client: Any, sign: Callable[..., tuple[bytes, dict[str, str]]]) -> Post:
    """post_oneclick(body, buyer=ANN, key=EYEZY_KEY, headers={}, **sign_overrides)."""

    async def _post(
        body: Any,
        buyer: str = ANN,
        key: tuple[str, str] = EYEZY_KEY,
        headers: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Answer:
        path = oneclick_path(buyer)
        raw, signed = sign(path, body, key=key, **overrides)
        response = await client.post(path, data=raw, headers=signed | (headers or {}))
        return Answer(
            response.status, await response.json(), dict(response.headers), signed["x-token"]
        )

    return _post


@dataclass(frozen=True)
class RowCounts:
    orders: int
    items: int
    outbox: int


async def row_counts(db: asyncpg.Connection) -> RowCounts:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM orders) AS orders,"
        " (SELECT count(*) FROM order_items) AS items,"
        " (SELECT count(*) FROM outbox) AS outbox"
    )
    assert row is not None
    return RowCounts(row["orders"], row["items"], row["outbox"])
