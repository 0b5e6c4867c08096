"""The steps every create endpoint shares once the caller is known: the Idempotency-Key,
the order plan, the one-transaction write, and the response."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from service import headers, idempotency
from service.claim_release import release_claim, release_claim_soon
from service.domain.identifiers import new_order_id
from service.errors import ApiError
from service.metrics import ORDERS_CREATED_BY_FAMILY
from service.middleware import json_dumps
from service.order_store import PreparedOrder, write_order
from service.records import record
from service.state import CONFIG, ORDER_ID, ORDER_WRITER, OUTBOX_WAKEUP, POOL

IDEMPOTENCY_HEADER = idempotency.HEADER
REPLAYED_HEADER = headers.IDEMPOTENT_REPLAYED


@record
class OrderPlan:
    """A validated order, ready to write: `prepare(order_id)` builds its rows."""

    prepare: Callable[[str], PreparedOrder]
    new_id: Callable[[], str] = new_order_id


async def create_order(
    request: web.Request,
    body: bytes,
    document: Any,
    *,
    idempotency_scope: str,
    plan: Callable[[], OrderPlan],
    reused_error: type[ApiError],
) -> web.Response:
    """Runs `plan()` (validation and the domain rules) and writes the order it returns.
    `body` is the request's body and `document` the JSON it parsed to.

    With an Idempotency-Key the key is claimed first; a retry gets the stored response,
    and any failure releases the claim so a corrected retry can use the key again.
    """
    app = request.app
    pool = app[POOL]
    key = idempotency.key_from_headers(request.headers.getall(IDEMPOTENCY_HEADER, []))
    claim: idempotency.IdempotencyClaim | None = None
    if key is not None:
        fingerprint = idempotency.request_fingerprint(
            request.method, request.path_qs, body, document
        )
        config = app[CONFIG]
        outcome = await idempotency.claim(
            pool,
            idempotency_scope,
            key,
            fingerprint,
            config.idempotency_ttl_seconds,
            config.idempotency_claim_stale_seconds,
            reused_error,
        )
        if isinstance(outcome, idempotency.StoredResponse):
            if outcome.order_id is not None:
                request[ORDER_ID] = outcome.order_id
            response = web.json_response(outcome.body, status=outcome.status, dumps=json_dumps)
            response.headers[REPLAYED_HEADER] = "true"
            return response
        claim = outcome
    try:
        order_plan = plan()
        prepared, reference = await write_order(
            app[ORDER_WRITER], order_plan.prepare, order_plan.new_id, claim
        )
    except asyncio.CancelledError:
        if claim is not None:
            # Cut off: the key is released all the same, without holding the request up.
            release_claim_soon(pool, claim)
        raise
    except BaseException:
        if claim is not None:
            # Shielded: a request cut off while it releases must not leave the key claimed.
            await asyncio.shield(release_claim(pool, claim))
        raise
    app[OUTBOX_WAKEUP].order_committed()
    ORDERS_CREATED_BY_FAMILY[prepared.row["family"]].inc()
    body_out: Any = prepared.response_body
    if reference is not None and isinstance(body_out, dict) and "order_id" in body_out:
        body_out = {**body_out, "order_id": reference}
    request[ORDER_ID] = prepared.row["id"]
    return web.json_response(body_out, status=prepared.response_status, dumps=json_dumps)
