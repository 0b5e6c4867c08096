"""Orders that go through: the response, the rows, the event, the customer's default
address, per-merchant references under concurrency, idempotency, and refusals that write
nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from tests.me_order.conftest import (
    ADDRESS,
    AUTOGIRO_PERIOD,
    CARD_PERIOD,
    INVOICE_PERIOD,
    ME_ORDER_PATH,
    Token,
    bearer,
    order_body,
)

OBJECT_ID = re.compile(r"[a-f0-9]{24}")
REFERENCE = re.compile(r"ADEPRIMO-(\d+)")
Counts = Callable[[], Awaitable[dict[str, int]]]


async def place(client: Any, token: str, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(ME_ORDER_PATH, data=raw, headers={**bearer(token), **headers})


async def place_ok(client: Any, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await place(client, token, body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def order_of(db: asyncpg.Connection, order_id: str) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)


async def event_of(db: asyncpg.Connection, order_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = await db.fetchval(
        "SELECT payload FROM outbox WHERE aggregate_id = $1", order_id
    )
    return payload


async def test_invoice_order_as_in_the_document(
    client: Any, token: Token, db: asyncpg.Connection, account: str
) -> None:
    body = order_body(traffic_source="newsletter", merchant_reference="campaign-42")
    result = await place_ok(client, token(), body)

    assert set(result) == {"id", "order_id"}
    assert OBJECT_ID.fullmatch(result["id"])
    assert REFERENCE.fullmatch(result["order_id"])

    row = await order_of(db, result["id"])
    assert row["family"] == "me_order"
    assert row["reference"] == result["order_id"]
    assert row["customer_account"] == account
    assert (row["currency"], row["base_amount"], row["total_amount"]) == ("SEK", 9900, 9900)
    assert str(row["buyer_ip"]) == "127.0.0.1"
    details = row["details"]
    assert details["payment_method"] == "invoice"
    assert details["period_id"] == INVOICE_PERIOD
    assert details["start_date"] == "2019-05-01T00:00:00Z"
    assert details["traffic_source"] == "newsletter"
    assert details["merchant_reference"] == "campaign-42"
    assert details["address"] is None

    items = await db.fetch("SELECT * FROM order_items WHERE order_id = $1", result["id"])
    assert [(i["product_code"], i["period_id"], i["unit_amount"], i["amount"]) for i in items] == [
        ("adeprimo_digital", INVOICE_PERIOD, 9900, 9900)
    ]

    event = await event_of(db, result["id"])
    assert event["subject"] == result["id"]
    assert event["data"]["family"] == "me_order"
    order = event["data"]["order"]
    assert order["id"] == result["id"]
    assert order["reference"] == result["order_id"]
    assert order["customer"] == {"account": account, "address": None}
    assert order["merchant"]["code"] == "adeprimo"
    assert order["payment"] == {
        "method": "invoice",
        "periodId": INVOICE_PERIOD,
        "startDate": "2019-05-01T00:00:00Z",
        "invoiceDeliveryMethod": None,
        "receiptUrl": body["receipt_url"],
        "merchantReference": "campaign-42",
        "trafficSource": "newsletter",
        "language": "sv-SE",
        "userAgent": body["user_agent"],
    }
    assert [(i["productCode"], i["periodId"], i["amount"]) for i in order["items"]] == [
        ("adeprimo_digital", INVOICE_PERIOD, 9900)
    ]
    assert order["amounts"] == {
        "base": 9900,
        "discountPercent": None,
        "discount": 0,
        "coupon": 0,
        "total": 9900,
    }
    assert order["request"] == {
        "buyerIp": "127.0.0.1",
        "source": None,
        "id": None,
        "googleAnalyticsClientId": None,
    }
    assert (order["buyer"], order["autocharge"], order["coupon"]) == (None, None, None)


async def test_autogiro_period_gives_an_autogiro_order(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    result = await place_ok(client, token(), order_body(period_id=AUTOGIRO_PERIOD.upper()))
    row = await order_of(db, result["id"])
    assert row["details"]["payment_method"] == "autogiro"
    assert row["details"]["period_id"] == AUTOGIRO_PERIOD
    event = await event_of(db, result["id"])
    assert event["data"]["order"]["payment"]["method"] == "autogiro"


async def test_invoice_delivery_method_on_an_invoice_period(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    result = await place_ok(client, token(), order_body(invoice_delivery_method="email"))
    row = await order_of(db, result["id"])
    assert row["details"]["invoice_delivery_method"] == "email"
    event = await event_of(db, result["id"])
    assert event["data"]["order"]["payment"]["invoiceDeliveryMethod"] == "email"


async def test_start_date_defaults_to_now_in_utc(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    before = datetime.now(UTC)
    result = await place_ok(client, token(), order_body(start_date=None))
    row = await order_of(db, result["id"])
    start = datetime.fromisoformat(row["details"]["start_date"])
    assert before - timedelta(seconds=1) <= start <= datetime.now(UTC)


async def test_start_date_without_offset_is_read_as_utc(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    # The document: "The start date of the subscription in UTC".
    result = await place_ok(client, token(), order_body(start_date="2019-05-01T00:00:00"))
    row = await order_of(db, result["id"])
    assert row["details"]["start_date"] == "2019-05-01T00:00:00Z"


async def test_start_date_with_offset_is_stored_in_utc(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    result = await place_ok(client, token(), order_body(start_date="2019-05-01T02:00:00+02:00"))
    row = await order_of(db, result["id"])
    assert row["details"]["start_date"] == "2019-05-01T00:00:00Z"


async def test_optional_fields_may_be_null(client: Any, token: Token) -> None:
    body = order_body()
    body.update(start_date=None, address=None, traffic_source=None, merchant_reference=None)
    await place_ok(client, token(), body)


async def test_address_becomes_the_customers_default(
    client: Any, token: Token, db: asyncpg.Connection, account: str
) -> None:
    first = await place_ok(client, token(), order_body(address=ADDRESS))
    stored = await db.fetchval(
        "SELECT c.default_address FROM customers c JOIN merchants m ON m.id = c.merchant_id "
        "WHERE m.code = 'adeprimo' AND c.account = $1",
        account,
    )
    assert stored == ADDRESS
    assert (await order_of(db, first["id"]))["details"]["address"] == ADDRESS
    assert (await event_of(db, first["id"]))["data"]["order"]["customer"]["address"] == ADDRESS

    # A later order without an address uses the default.
    second = await place_ok(client, token(), order_body())
    assert (await order_of(db, second["id"]))["details"]["address"] == ADDRESS
    assert (await event_of(db, second["id"]))["data"]["order"]["customer"]["address"] == ADDRESS

    # A new address replaces the default.
    moved = {"street": "Storgatan", "street_number": "2", "city": "Malmö", "country_code": "se"}
    third = await place_ok(client, token(), order_body(address=moved))
    expected = {**moved, "country_code": "SE"}
    assert (await order_of(db, third["id"]))["details"]["address"] == expected
    fourth = await place_ok(client, token(), order_body())
    assert (await event_of(db, fourth["id"]))["data"]["order"]["customer"]["address"] == expected


async def test_addresses_are_per_customer(
    client: Any, token: Token, db: asyncpg.Connection
) -> None:
    await place_ok(client, token(), order_body(address=ADDRESS))
    other = await place_ok(client, token(sub="another-customer-of-this-test"), order_body())
    assert (await order_of(db, other["id"]))["details"]["address"] is None


async def test_concurrent_orders_get_distinct_references(client: Any, token: Token) -> None:
    responses = await asyncio.gather(*(place(client, token(), order_body()) for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    results = [await r.json() for r in responses]
    references = {r["order_id"] for r in results}
    assert len(references) == 20
    assert len({r["id"] for r in results}) == 20
    assert all(REFERENCE.fullmatch(ref) for ref in references)


async def test_idempotency_key_replays_the_first_response(
    client: Any, token: Token, db: asyncpg.Connection, account: str
) -> None:
    body = order_body()
    first = await place(client, token(), body, **{"Idempotency-Key": "me-order-1"})
    assert first.status == 200
    again = await place(client, token(), body, **{"Idempotency-Key": "me-order-1"})
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    count = await db.fetchval("SELECT count(*) FROM orders WHERE customer_account = $1", account)
    assert count == 1

    changed = await place(
        client, token(), order_body(traffic_source="x"), **{"Idempotency-Key": "me-order-1"}
    )
    assert changed.status == 400
    assert await changed.json() == {
        "code": "idempotency_key_reused",
        "field": "Idempotency-Key",
        "message": "This Idempotency-Key was used with a different request",
    }


REFUSED: list[tuple[str, dict[str, Any], Any, dict[str, str]]] = [
    ("no token", {"auth": None}, order_body(), {}),
    ("scope", {"scope": "openid"}, order_body(), {}),
    ("content type", {}, order_body(), {"Content-Type": "text/plain"}),
    ("json", {}, b"{", {}),
    ("unknown", {}, order_body(address={**ADDRESS, "foo": 1}), {}),
    ("invalid", {}, order_body(address=ADDRESS, period_id="x"), {}),
    ("card", {}, order_body(address=ADDRESS, period_id=CARD_PERIOD), {}),
    ("product", {}, order_body(address=ADDRESS, product_code="nope"), {}),
]


@pytest.mark.parametrize(
    ("claims", "body", "headers"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_refused_request_writes_nothing(
    client: Any,
    token: Token,
    row_counts: Counts,
    claims: dict[str, Any],
    body: Any,
    headers: dict[str, str],
) -> None:
    before = await row_counts()
    all_headers = {"Idempotency-Key": "refused-1", **headers}
    if claims.get("auth", True) is None:
        raw = orjson.dumps(body)
        response = await client.post(ME_ORDER_PATH, data=raw, headers=all_headers)
    else:
        response = await place(client, token(**claims), body, **all_headers)
    assert 400 <= response.status < 500
    assert await row_counts() == before
