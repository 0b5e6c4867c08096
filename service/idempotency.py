"""Idempotency-Key handling, after Stripe's: the first request with a key claims it, the
order transaction stores the response, and retries get that response back.

Only completed requests are remembered: a request that fails (validation, a rule, a
database error) releases its claim, so a corrected retry with the same key goes through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg

from service.errors import ApiError, BadRequest, Conflict
from service.sql import queries

MAX_KEY_LENGTH = 255
# A claim older than this belongs to a request whose process died; a retry may take it over.
STALE_CLAIM_SECONDS = 60


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    scope: str
    key: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def validate_key(raw: str | None) -> str | None:
    """The header's value, or None when absent; refuses empty, long or unprintable keys."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            code="invalid_idempotency_key",
            fields={"Idempotency-Key": ["1 to 255 printable ASCII characters"]},
        )
    return raw


async def claim(
    pool: asyncpg.Pool,
    scope: str,
    key: str,
    fingerprint: str,
    ttl_seconds: int,
    reused_error: type[ApiError],
) -> IdempotencyClaim | StoredResponse:
    """Claims the key for this request, or answers with what an earlier request stored.

    Raises `reused_error` (code idempotency_key_reused) when the key came with another
    request, and Conflict (idempotency_key_in_use) while the first is still running.
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            queries.idempotency_claim, scope, key, fingerprint, ttl_seconds, STALE_CLAIM_SECONDS
        )
    if row is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry later",
            code="idempotency_key_in_use",
        )
    if row["request_hash"] != fingerprint:
        raise reused_error(
            "This Idempotency-Key was used with a different request",
            code="idempotency_key_reused",
            fields={"Idempotency-Key": ["already used with a different request"]},
        )
    if row["claimed"]:
        return IdempotencyClaim(scope, key)
    if row["status"] == "completed":
        return StoredResponse(row["response_status"], row["response_body"])
    raise Conflict(
        "A request with this Idempotency-Key is still being processed; retry later",
        code="idempotency_key_in_use",
    )


async def release(pool: asyncpg.Pool, claimed: IdempotencyClaim) -> None:
    async with pool.acquire() as conn:
        await conn.execute(queries.idempotency_release, claimed.scope, claimed.key)


async def prune(pool: asyncpg.Pool, ttl_seconds: int) -> int:
    async with pool.acquire() as conn:
        result: str = await conn.execute(queries.idempotency_prune, ttl_seconds)
    return int(result.rsplit(" ", 1)[-1])
