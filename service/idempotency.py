"""Idempotency-Key handling, after Stripe's: the first request with a key claims it, the
order transaction stores the response, and retries get that response back.

Only completed requests are remembered: a request that fails (validation, a rule, a
database error) releases its claim, so a corrected retry with the same key goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog

from service import headers
from service.background import running_in_background
from service.db import run_again_if_lost
from service.errors import ApiError, BadRequest, Conflict
from service.sql import queries

log = structlog.get_logger(__name__)

HEADER = headers.IDEMPOTENCY_KEY
MAX_KEY_LENGTH = 255
# Expired records are also ignored on claim, so pruning only keeps the table small.
PRUNE_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A key this request holds; `claim_id` is what completing or releasing it names.
    After `stale_seconds` unfinished, a retry may take it over."""

    scope: str
    key: str
    claim_id: uuid.UUID
    stale_seconds: float


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any
    order_id: str | None = None


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def canonical_json(document: Any) -> bytes:
    """`document` serialised with sorted keys and no whitespace: the same JSON sent with
    another key order, spacing or escaping gives the same bytes."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class RequestFingerprint:
    """What a retry must match, as Stripe compares a retry's parameters rather than its
    bytes: `canonical` hashes method, path and query, and the body as canonical JSON, so a
    client that serialises the same body differently on a retry is still retrying.
    `raw` hashes the body's bytes instead, which records stored before canonical
    fingerprints hold; matching it too keeps their retries answered until they expire."""

    canonical: str
    raw: str

    def matches(self, stored: str) -> bool:
        return stored == self.canonical or stored == self.raw


def request_fingerprint(method: str, path: str, body: bytes, document: Any) -> RequestFingerprint:
    """The fingerprint of a request whose `body` parsed to the JSON `document`."""
    return RequestFingerprint(
        canonical=request_hash(method, path, canonical_json(document)),
        raw=request_hash(method, path, body),
    )


def _invalid_key(message: str) -> BadRequest:
    return BadRequest(
        f"Idempotency-Key {message}", code="invalid_idempotency_key", fields={HEADER: [message]}
    )


def validate_key(raw: str | None) -> str | None:
    """The header's value, or None when absent; refuses empty, long or unprintable keys."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise _invalid_key("must be 1 to 255 printable ASCII characters")
    return raw


def key_from_headers(values: list[str]) -> str | None:
    """The one Idempotency-Key of a request (`headers.getall`), or None; two are refused,
    since which of them the client meant cannot be known."""
    if len(values) > 1:
        raise _invalid_key("must be sent once")
    return validate_key(values[0] if values else None)


async def claim(
    pool: asyncpg.Pool,
    scope: str,
    key: str,
    fingerprint: RequestFingerprint,
    ttl_seconds: int,
    stale_seconds: float,
    reused_error: type[ApiError],
) -> IdempotencyClaim | StoredResponse:
    """Claims the key for this request, or answers with what an earlier request stored.
    A claim unfinished for `stale_seconds` (its request died) is taken over.

    Raises `reused_error` (code idempotency_key_reused) when the key came with another
    request, and Conflict (idempotency_key_in_use) while the first is still running.
    """
    claim_id = uuid.uuid4()

    async def run_claim() -> asyncpg.Record | None:
        return await run_again_if_lost(
            pool,
            lambda conn: conn.fetchrow(
                queries.idempotency_claim,
                scope,
                key,
                fingerprint.canonical,
                ttl_seconds,
                stale_seconds,
                claim_id,
            ),
        )

    # No row: a transaction inserted the key after this statement's snapshot was taken.
    # It may be this claim's own first run, lost with its connection while it committed
    # (run again, the claim waited for it): once more, its row is seen.
    row = await run_claim() or await run_claim()
    if row is None:
        raise _in_use()
    if not fingerprint.matches(row["request_hash"]):
        raise reused_error(
            "This Idempotency-Key was used with a different request",
            code="idempotency_key_reused",
            fields={"Idempotency-Key": ["already used with a different request"]},
        )
    if row["claimed"]:
        return IdempotencyClaim(scope, key, claim_id, stale_seconds)
    if row["status"] == "completed":
        return StoredResponse(row["response_status"], row["response_body"], row["order_id"])
    raise _in_use()


def _in_use() -> Conflict:
    # The first request is answered within a few seconds (or its claim goes stale): a
    # client told when to retry need not guess.
    return Conflict(
        "A request with this Idempotency-Key is still being processed; retry later",
        code="idempotency_key_in_use",
        headers={"Retry-After": "1"},
    )


async def release(pool: asyncpg.Pool, claimed: IdempotencyClaim) -> None:
    await run_again_if_lost(
        pool,
        lambda conn: conn.execute(
            queries.idempotency_release, claimed.scope, claimed.key, claimed.claim_id
        ),
    )


async def prune(pool: asyncpg.Pool, ttl_seconds: int) -> int:
    """Deletes the records older than the TTL; returns how many."""
    async with pool.acquire() as conn:
        result: str = await conn.execute(queries.idempotency_prune, ttl_seconds)
    return int(result.rsplit(" ", 1)[-1])


async def prune_periodically(
    pool: asyncpg.Pool, ttl_seconds: int, interval: float = PRUNE_INTERVAL_SECONDS
) -> None:
    """Prunes expired records every `interval` seconds until cancelled. Several instances
    may run it at once: the DELETE is idempotent."""
    while True:
        try:
            pruned = await prune(pool, ttl_seconds)
        except Exception as exc:  # noqa: BLE001 - the task must outlive any failure; next round
            log.warning("idempotency_prune_failed", error=repr(exc))
        else:
            if pruned:
                log.info("idempotency_pruned", records=pruned)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def pruning(
    pool: asyncpg.Pool, ttl_seconds: int, *, stop_within: Callable[[], float] | None = None
) -> AsyncIterator[None]:
    """The pruning task runs for the block (the application's lifetime)."""
    pruner = prune_periodically(pool, ttl_seconds)
    async with running_in_background(pruner, "idempotency-prune", stop_within=stop_within):
        yield
