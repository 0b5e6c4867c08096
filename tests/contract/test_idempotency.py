"""The Idempotency-Key contract of the create endpoints (README, section Idempotency)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import pytest

from service import idempotency
from service.app import create_app
from service.config import Config
from service.db import create_pool
from service.errors import Conflict, ValidationFailed
from service.order_store import write_order
from service.order_writer import OrderWriter
from service.sql import queries
from tests.contract.conftest import (
    INITIALS_PATH,
    ME_ORDER_BODY,
    ME_ORDER_PATH,
    MONITERRO_KEY,
    Written,
    initials_body,
    send,
    signed,
)
from tests.events.conftest import prepared_order
from tests.support.locks import until_lock_waits

WrittenBy = Callable[[str], Awaitable[Written]]
Bearer = Callable[[str], dict[str, str]]


async def stored_record(db: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM idempotency_keys WHERE key = $1", key)


def order_id_of(body: dict[str, Any]) -> str:
    return str(body["data"]["url"].rsplit("/", 1)[-1])


# --- the first request, and a retry ---------------------------------------------------------


async def test_first_request_is_processed_and_its_response_stored(
    client: Any,
    db: asyncpg.Connection,
    idempotency_key: str,
    sequence: str,
    written_by_sequence: WrittenBy,
) -> None:
    response = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert response.status == 200
    assert "Idempotent-Replayed" not in response.headers
    body = await response.json()
    record = await stored_record(db, idempotency_key)
    assert record is not None
    assert record["status"] == "completed"
    eyezy_id = await db.fetchval("SELECT id FROM merchants WHERE code = 'eyezy'")
    assert record["scope"] == f"merchant:{eyezy_id}"
    assert record["response_status"] == 200
    assert record["response_body"] == body
    assert record["order_id"] == order_id_of(body)
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_same_key_and_request_returns_the_stored_response(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    first = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert first.status == 200
    # A client's retry is signed anew (another x-date): the same request to the key.
    retry = await send(
        client,
        signed(
            INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key, seconds_later=2
        ),
    )
    assert retry.status == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    # Unchanged to the byte, key order included (the body is kept as json, not jsonb).
    assert await retry.read() == await first.read()
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_a_retry_serialising_the_same_json_differently_is_the_same_request(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    first = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert first.status == 200
    # Another client library: keys in another order, spaces, and a character escaped.
    reserialised = b'{ "sequence" : "' + sequence.encode()
    reserialised += b'",\n  "product": {"code": "premium_\\u0031m"} }'
    assert orjson.loads(reserialised) == initials_body(sequence)
    retry = await send(
        client,
        signed(
            INITIALS_PATH,
            None,
            raw=reserialised,
            idempotency_key=idempotency_key,
            seconds_later=2,
        ),
    )
    assert retry.status == 200, await retry.text()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_a_record_holding_the_hash_of_the_body_bytes_still_answers_its_retry(
    client: Any, db: asyncpg.Connection, idempotency_key: str, sequence: str
) -> None:
    # Records stored before fingerprints hashed canonical JSON hold the bytes' hash.
    retry = signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    await db.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response_status,"
        " response_body) SELECT 'merchant:' || id, $1, $2, 'completed', 200,"
        ' \'{"data": {"url": "https://pay.example/OLDORDER"}}\''
        " FROM merchants WHERE code = 'eyezy'",
        idempotency_key,
        idempotency.request_hash("POST", INITIALS_PATH, retry.raw),
    )
    response = await send(client, retry)
    assert response.status == 200
    assert response.headers["Idempotent-Replayed"] == "true"
    assert await response.json() == {"data": {"url": "https://pay.example/OLDORDER"}}


async def test_same_key_with_another_request_is_refused_on_merchant_endpoints(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    first = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert first.status == 200
    other = initials_body(sequence, discount=10)
    response = await send(client, signed(INITIALS_PATH, other, idempotency_key=idempotency_key))
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in error["fields"]
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_payway_endpoint_replays_and_refuses_reuse_with_400(
    client: Any,
    bearer: Bearer,
    account: str,
    idempotency_key: str,
    written_by_account: WrittenBy,
) -> None:
    headers = {**bearer(account), "Idempotency-Key": idempotency_key}
    raw = orjson.dumps(ME_ORDER_BODY)
    first = await client.post(ME_ORDER_PATH, data=raw, headers=headers)
    assert first.status == 200
    created = await first.json()
    retry = await client.post(ME_ORDER_PATH, data=raw, headers=headers)
    assert retry.status == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    # The stored response carries the reference the order got (ADEPRIMO-<number>).
    assert await retry.json() == created
    assert created["order_id"].startswith("ADEPRIMO-")

    other = orjson.dumps({**ME_ORDER_BODY, "traffic_source": "newsletter"})
    reused = await client.post(ME_ORDER_PATH, data=other, headers=headers)
    assert reused.status == 400
    assert await reused.json() == {
        "code": "idempotency_key_reused",
        "field": "Idempotency-Key",
        "message": "This Idempotency-Key was used with a different request",
    }
    assert await written_by_account(account) == Written(orders=1, events=1)


# --- concurrency --------------------------------------------------------------------------


async def test_fifty_concurrent_identical_requests_make_one_order(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    request = signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    responses = await asyncio.gather(*(send(client, request) for _ in range(50)))
    outcomes: Counter[str] = Counter()
    created: list[dict[str, Any]] = []
    for response in responses:
        body = await response.json()
        if response.status == 200 and "Idempotent-Replayed" not in response.headers:
            outcomes["created"] += 1
            created.append(body)
        elif response.status == 200:
            outcomes["replayed"] += 1
        else:
            assert response.status == 409, body
            assert body["error"]["code"] == "idempotency_key_in_use"
            outcomes["in_use"] += 1
    assert outcomes["created"] == 1, outcomes
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)
    # Every replay is the one created response.
    for response in responses:
        if response.headers.get("Idempotent-Replayed") == "true":
            assert await response.json() == created[0]


async def test_concurrent_payway_requests_with_one_key_make_one_order(
    client: Any,
    bearer: Bearer,
    account: str,
    idempotency_key: str,
    written_by_account: WrittenBy,
) -> None:
    headers = {**bearer(account), "Idempotency-Key": idempotency_key}
    raw = orjson.dumps(ME_ORDER_BODY)
    responses = await asyncio.gather(
        *(client.post(ME_ORDER_PATH, data=raw, headers=headers) for _ in range(20))
    )
    statuses = Counter(
        "created"
        if r.status == 200 and "Idempotent-Replayed" not in r.headers
        else f"{r.status}{'-replayed' if 'Idempotent-Replayed' in r.headers else ''}"
        for r in responses
    )
    assert statuses["created"] == 1, statuses
    assert set(statuses) <= {"created", "200-replayed", "409"}, statuses
    assert await written_by_account(account) == Written(orders=1, events=1)


# --- signed requests sent twice ------------------------------------------------------------


async def test_byte_for_byte_resend_with_a_key_gets_the_stored_response(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    request = signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    first = await send(client, request)
    assert first.status == 200
    again = await send(client, request)
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_byte_for_byte_resend_without_a_key_is_a_replay(
    client: Any, sequence: str, written_by_sequence: WrittenBy
) -> None:
    request = signed(INITIALS_PATH, initials_body(sequence))
    assert (await send(client, request)).status == 200
    again = await send(client, request)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "request_replayed"
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


# --- failures are not stored ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_changes", "status"),
    [
        ({"discount": 101}, 422),  # the schema refuses it
        ({"product": {"code": "no_such_product"}}, 404),  # a catalog rule refuses it
        ({"coupon": "EXPIRED2020"}, 422),
    ],
)
async def test_a_failed_request_is_not_stored_and_a_corrected_retry_works(
    client: Any,
    db: asyncpg.Connection,
    idempotency_key: str,
    sequence: str,
    written_by_sequence: WrittenBy,
    bad_changes: dict[str, Any],
    status: int,
) -> None:
    bad = await send(
        client,
        signed(
            INITIALS_PATH, initials_body(sequence, **bad_changes), idempotency_key=idempotency_key
        ),
    )
    assert bad.status == status
    assert await stored_record(db, idempotency_key) is None
    corrected = await send(
        client,
        signed(
            INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key, seconds_later=1
        ),
    )
    assert corrected.status == 200
    assert "Idempotent-Replayed" not in corrected.headers
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_a_failed_payway_request_is_not_stored(
    client: Any,
    db: asyncpg.Connection,
    bearer: Bearer,
    account: str,
    idempotency_key: str,
    written_by_account: WrittenBy,
) -> None:
    headers = {**bearer(account), "Idempotency-Key": idempotency_key}
    card_period = {**ME_ORDER_BODY, "period_id": "5cb804811d41c82b5c518eaa"}
    bad = await client.post(ME_ORDER_PATH, data=orjson.dumps(card_period), headers=headers)
    assert bad.status == 400
    assert (await bad.json())["code"] == "invalid_parameter"
    assert await stored_record(db, idempotency_key) is None
    good = await client.post(ME_ORDER_PATH, data=orjson.dumps(ME_ORDER_BODY), headers=headers)
    assert good.status == 200
    assert await written_by_account(account) == Written(orders=1, events=1)


# --- the key itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_key",
    ["", "x" * 256, "tab\there", "ключ-1"],
    ids=["empty", "too-long", "control-character", "non-ascii"],
)
async def test_invalid_keys_are_refused_with_400(
    client: Any, bearer: Bearer, account: str, sequence: str, bad_key: str
) -> None:
    request = signed(INITIALS_PATH, initials_body(sequence))
    headers = {**request.headers, "Idempotency-Key": bad_key}
    response = await client.post(INITIALS_PATH, data=request.raw, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_idempotency_key"

    payway_headers = {**bearer(account), "Idempotency-Key": bad_key}
    payway = await client.post(
        ME_ORDER_PATH, data=orjson.dumps(ME_ORDER_BODY), headers=payway_headers
    )
    assert payway.status == 400
    assert (await payway.json())["code"] == "invalid_idempotency_key"


async def test_a_key_of_255_printable_characters_is_accepted(
    client: Any, sequence: str, written_by_sequence: WrittenBy
) -> None:
    key = ("~ !" * 85)[:255]
    response = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=key)
    )
    assert response.status == 200
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_keys_are_scoped_to_the_merchant(
    client: Any, idempotency_key: str, sequence: str, written_by_sequence: WrittenBy
) -> None:
    eyezy = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert eyezy.status == 200
    moniterro_body = {"product": {"code": "family_1m"}, "sequence": sequence}
    moniterro = await send(
        client,
        signed(INITIALS_PATH, moniterro_body, key=MONITERRO_KEY, idempotency_key=idempotency_key),
    )
    assert moniterro.status == 200, await moniterro.text()
    assert "Idempotent-Replayed" not in moniterro.headers
    assert await written_by_sequence(sequence) == Written(orders=2, events=2)


async def test_keys_are_scoped_to_the_customer_on_the_payway_endpoint(
    client: Any, bearer: Bearer, idempotency_key: str, written_by_account: WrittenBy
) -> None:
    raw = orjson.dumps(ME_ORDER_BODY)
    for account in ("contract-ann", "contract-bob"):
        headers = {**bearer(account + idempotency_key[-8:]), "Idempotency-Key": idempotency_key}
        response = await client.post(ME_ORDER_PATH, data=raw, headers=headers)
        assert response.status == 200
        assert "Idempotent-Replayed" not in response.headers
        assert await written_by_account(account + idempotency_key[-8:]) == Written(1, 1)


# --- expiry -------------------------------------------------------------------------------


async def age(db: asyncpg.Connection, key: str, seconds: float) -> None:
    await db.execute(
        "UPDATE idempotency_keys SET created_at = created_at - make_interval(secs => $2),"
        " locked_at = locked_at - make_interval(secs => $2) WHERE key = $1",
        key,
        float(seconds),
    )


async def test_an_expired_key_is_a_new_key(
    aiohttp_client: Any,
    config: Config,
    db: asyncpg.Connection,
    idempotency_key: str,
    sequence: str,
    written_by_sequence: WrittenBy,
) -> None:
    # The TTL is configurable: one hour here, against the default of a day.
    client = await aiohttp_client(create_app(replace(config, idempotency_ttl_seconds=3600)))
    first = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert first.status == 200
    await age(db, idempotency_key, 3601)
    # Expired: a different request with the key is processed, not refused as a reuse.
    again = await send(
        client,
        signed(INITIALS_PATH, initials_body(sequence, discount=5), idempotency_key=idempotency_key),
    )
    assert again.status == 200
    assert "Idempotent-Replayed" not in again.headers
    assert await written_by_sequence(sequence) == Written(orders=2, events=2)


async def test_a_retry_racing_the_takeover_of_an_expired_key_never_gets_the_old_answer(
    config: Config, db: asyncpg.Connection, idempotency_key: str
) -> None:
    # A completed record past its TTL, and two retries at once: the first takes it over;
    # the second, whose statement started before that commit, must not read the expired
    # record (an answer naming an order the retry did not make) but wait: 409 in use.
    scope, ttl = "test-scope", 3600
    fingerprint = idempotency.RequestFingerprint("hash-of-the-retries", "raw-hash")
    await db.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response_status,"
        " response_body, created_at) VALUES ($1, $2, $3, 'completed', 200,"
        ' \'{"data": {"id": "OLDORDER"}}\', now() - make_interval(secs => $4))',
        scope,
        idempotency_key,
        fingerprint.canonical,
        float(ttl + 1),
    )
    pool = await create_pool(config)
    try:
        async with db.transaction():
            first = await db.fetchrow(
                queries.idempotency_claim,
                scope,
                idempotency_key,
                fingerprint.canonical,
                ttl,
                10.0,
                uuid.uuid4(),
            )
            assert first is not None and first["claimed"]
            second = asyncio.create_task(
                idempotency.claim(
                    pool, scope, idempotency_key, fingerprint, ttl, 10.0, ValidationFailed
                )
            )
            # The second statement waits for the row the first one took over.
            await until_lock_waits(db)
        with pytest.raises(Conflict) as refused:
            await second
        assert refused.value.code == "idempotency_key_in_use"
    finally:
        await pool.close()


async def test_a_stale_claim_of_a_dead_request_is_taken_over(
    client: Any,
    config: Config,
    db: asyncpg.Connection,
    idempotency_key: str,
    sequence: str,
    written_by_sequence: WrittenBy,
) -> None:
    # What a process that died between claim and commit leaves behind, just old enough
    # to count as stale: the longest wait for a connection plus the longest order write.
    # Its request stored nothing, so any request may take the key, not only the same one.
    stale_seconds = config.idempotency_claim_stale_seconds
    assert stale_seconds == 10
    await leave_claim_of_dead_request(
        db, idempotency_key, "hash-of-a-lost-request", age_seconds=stale_seconds + 1
    )
    response = await send(
        client, signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    )
    assert response.status == 200
    assert await written_by_sequence(sequence) == Written(orders=1, events=1)


async def test_a_claim_younger_than_the_stale_limit_still_holds_its_key(
    client: Any,
    config: Config,
    db: asyncpg.Connection,
    idempotency_key: str,
    sequence: str,
    written_by_sequence: WrittenBy,
) -> None:
    # The client's retry of a request that may still be writing its order.
    retry = signed(INITIALS_PATH, initials_body(sequence), idempotency_key=idempotency_key)
    await leave_claim_of_dead_request(
        db,
        idempotency_key,
        idempotency.request_hash("POST", INITIALS_PATH, retry.raw),
        age_seconds=config.idempotency_claim_stale_seconds - 2,
    )
    response = await send(client, retry)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "idempotency_key_in_use"
    # When to try again, as for a 503.
    assert response.headers["Retry-After"] == "1"
    assert await written_by_sequence(sequence) == Written(orders=0, events=0)


async def leave_claim_of_dead_request(
    db: asyncpg.Connection, key: str, request_hash: str, *, age_seconds: float
) -> None:
    await db.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, locked_at)"
        " SELECT 'merchant:' || id, $1, $2, 'in_progress',"
        " now() - make_interval(secs => $3) FROM merchants WHERE code = 'eyezy'",
        key,
        request_hash,
        age_seconds,
    )


async def test_a_request_whose_claim_was_taken_over_writes_nothing_and_frees_nothing(
    config: Config, db: asyncpg.Connection, idempotency_key: str
) -> None:
    """A request still running when its claim went stale and a retry took the key over."""
    pool = await create_pool(config)
    try:

        async def claim() -> idempotency.IdempotencyClaim:
            held = await idempotency.claim(
                pool,
                "merchant:test",
                idempotency_key,
                idempotency.RequestFingerprint("hash", "hash"),
                3600,
                config.idempotency_claim_stale_seconds,
                ValidationFailed,
            )
            assert isinstance(held, idempotency.IdempotencyClaim)
            return held

        slow = await claim()
        await age(db, idempotency_key, config.idempotency_claim_stale_seconds + 1)
        retry = await claim()
        assert retry.claim_id != slow.claim_id

        # The slow request fails and releases its claim: the retry's stays.
        await idempotency.release(pool, slow)
        record = await stored_record(db, idempotency_key)
        assert record is not None
        assert (record["status"], record["claim_id"]) == ("in_progress", retry.claim_id)

        # The slow request's order write is refused, and leaves nothing behind.
        order = await prepared_order(db, config)
        order_id = order.row["id"]
        with pytest.raises(Conflict) as refused:
            await write_order(
                OrderWriter(pool, writers=0, max_batch=1, queue_timeout=1.0),
                lambda _: order,
                lambda: order_id,
                slow,
            )
        assert refused.value.code == "idempotency_key_in_use"
        assert await db.fetchval("SELECT count(*) FROM orders WHERE id = $1", order_id) == 0
        assert (
            await db.fetchval("SELECT count(*) FROM outbox WHERE aggregate_id = $1", order_id) == 0
        )

        # The retry's write completes the key with its order.
        await write_order(
            OrderWriter(pool, writers=0, max_batch=1, queue_timeout=1.0),
            lambda _: order,
            lambda: order_id,
            retry,
        )
        record = await stored_record(db, idempotency_key)
        assert record is not None
        assert (record["status"], record["order_id"]) == ("completed", order_id)
    finally:
        await pool.close()


async def test_prune_deletes_only_expired_records(
    client: Any, db: asyncpg.Connection, pool: asyncpg.Pool, sequence: str
) -> None:
    keys = [f"prune-{sequence}-{n}" for n in range(2)]
    for n, key in enumerate(keys):
        body = initials_body(sequence, discount=n)
        assert (await send(client, signed(INITIALS_PATH, body, idempotency_key=key))).status == 200
    await age(db, keys[0], 24 * 3600 + 1)
    pruned = await idempotency.prune(pool, 24 * 3600)
    assert pruned >= 1
    assert await stored_record(db, keys[0]) is None
    assert await stored_record(db, keys[1]) is not None


async def test_the_pruning_task_prunes_periodically(
    db: asyncpg.Connection, pool: asyncpg.Pool, idempotency_key: str
) -> None:
    await db.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, created_at)"
        " VALUES ('merchant:0', $1, 'h', 'in_progress', now() - interval '2 days')",
        idempotency_key,
    )
    task = asyncio.create_task(idempotency.prune_periodically(pool, 24 * 3600, interval=0.05))
    try:
        async with asyncio.timeout(10):
            while await stored_record(db, idempotency_key) is not None:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_two_keys_in_one_request_are_refused(client: Any, sequence: str) -> None:
    request = signed(INITIALS_PATH, initials_body(sequence))
    headers = [*request.headers.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = await client.post(INITIALS_PATH, data=request.raw, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_idempotency_key"
