"""POST /api/v2/initials/url against the real database: the order written, its event and
the response agree; defaults; the shop rule; a refused request writes nothing."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import jsonschema

from events.contract import component_schema
from schemas.initials import initials_url_response_schema
from tests.initials.conftest import Post, order_id_of

FULL_BODY: dict[str, Any] = {
    "product": {"code": "premium_1m", "currency": "EUR"},
    "buyer": {
        "email": "dora@example.com",
        "id": "crm-4711",
        "firstName": "Dora",
        "lastName": "Explorer",
        "country": "de",
        "locale": "de-DE",
    },
    "metaData": {"foo": "bar", "n": 1.5, "flag": True, "none": None, "ünï": "çødé"},
    "autoChargeStatus": False,
    "sequence": "123456123456123456",
    "discount": 15,
    "coupon": "WELCOME10",
    "subbrand": "eyezy_app_com",
}


async def _order_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM orders")
    return count


async def test_full_request_writes_what_it_answers(
    post_initials: Post, db: asyncpg.Connection
) -> None:
    response = await post_initials(FULL_BODY)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert initials_url_response_schema.validate(body) == {}
    order_id = order_id_of(body)
    assert re.fullmatch(r"[0-9A-Za-z]{8}", order_id)
    assert body == {
        "data": {
            "url": f"https://st-pay-front-eyezy-app-com.example/initial-billing/{order_id}",
            "params": {
                "metaData": FULL_BODY["metaData"],
                "sequence": "123456123456123456",
                "discount": 15,
                "coupon": "WELCOME10",
                "googleAnalyticsClientId": "GA1.2.1234567890.1700000000",
            },
        },
        "meta": [],
    }

    row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    # EUR 2799: discount 15 % = 419.85 -> 420; coupon 10 % of 2379 = 237.9 -> 238.
    assert (row["family"], row["status"], row["currency"]) == ("initials_url", "created", "EUR")
    assert (row["base_amount"], row["discount_percent"], row["discount_amount"]) == (2799, 15, 420)
    assert (row["coupon_code"], row["coupon_amount"], row["total_amount"]) == (
        "WELCOME10",
        238,
        2141,
    )
    assert (row["autocharge"], row["autocharge_explicit"]) == (False, True)
    assert row["subbrand"] == "eyezy_app_com"
    assert row["payment_url"] == body["data"]["url"]
    assert row["sequence"] == "123456123456123456"
    assert row["metadata"] == FULL_BODY["metaData"]
    assert row["buyer"] == {**FULL_BODY["buyer"], "country": "DE"}
    assert row["buyer_id"] is None
    assert str(row["buyer_ip"]) == "203.0.113.10"
    assert (row["source"], row["source_id"]) == ("web", "checkout")
    assert row["ga_client_id"] == "GA1.2.1234567890.1700000000"

    items = await db.fetch("SELECT * FROM order_items WHERE order_id = $1", order_id)
    assert [(i["product_code"], i["unit_amount"], i["quantity"]) for i in items] == [
        ("premium_1m", 2799, 1)
    ]

    event = await db.fetchrow("SELECT * FROM outbox WHERE aggregate_id = $1", order_id)
    assert event is not None
    envelope = event["payload"]
    assert (envelope["subject"], envelope["specversion"]) == (order_id, "1.0")
    data = envelope["data"]
    assert data["metaData"] == FULL_BODY["metaData"]
    order = data["order"]
    assert order["merchant"]["code"] == "eyezy"
    assert order["amounts"] == {
        "base": 2799,
        "discountPercent": 15,
        "discount": 420,
        "coupon": 238,
        "total": 2141,
    }
    assert order["coupon"] == {"code": "WELCOME10", "amount": 238}
    assert order["buyer"] == {**FULL_BODY["buyer"], "country": "DE"}
    assert order["items"] == [
        {
            "position": 0,
            "action": "purchase",
            "productCode": "premium_1m",
            "productName": "Premium, monthly",
            "subscriptionId": None,
            "periodId": None,
            "unitAmount": 2799,
            "quantity": 1,
            "amount": 2799,
        }
    ]
    assert (order["subbrand"], order["sequence"]) == ("eyezy_app_com", "123456123456123456")
    assert order["paymentUrl"] == body["data"]["url"]
    assert order["request"] == {
        "buyerIp": "203.0.113.10",
        "source": "web",
        "id": "checkout",
        "googleAnalyticsClientId": "GA1.2.1234567890.1700000000",
    }
    assert (order["autocharge"], order["autochargeExplicit"]) == (False, True)
    assert (order["customer"], order["payment"], order["chargeMethodId"]) == (None, None, None)
    assert order["createdAt"].endswith("Z")


async def test_minimal_request_takes_the_merchants_defaults(
    post_initials: Post, db: asyncpg.Connection
) -> None:
    response = await post_initials({"product": {"code": "basic_1m"}})
    assert response.status == 200, await response.text()
    body = await response.json()
    order_id = order_id_of(body)
    assert body["data"]["url"] == f"https://pay.eyezy.example/initial-billing/{order_id}"
    assert body["data"]["params"] == {
        "metaData": None,
        "sequence": None,
        "discount": None,
        "coupon": None,
        "googleAnalyticsClientId": "GA1.2.1234567890.1700000000",
    }
    row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    assert (row["currency"], row["base_amount"], row["total_amount"]) == ("USD", 999, 999)
    # eyezy's precheck autocharge (desktop) is on; null means the same as absent.
    assert (row["autocharge"], row["autocharge_explicit"]) == (True, False)
    assert row["coupon_id"] is None and row["discount_amount"] == 0


async def test_null_autocharge_takes_the_precheck_setting(
    post_initials: Post, db: asyncpg.Connection
) -> None:
    response = await post_initials({"product": {"code": "basic_1m"}, "autoChargeStatus": None})
    row = await db.fetchrow(
        "SELECT autocharge, autocharge_explicit FROM orders WHERE id = $1",
        order_id_of(await response.json()),
    )
    assert row is not None and (row["autocharge"], row["autocharge_explicit"]) == (True, False)


async def test_jpy_order_and_amount_coupon(post_initials: Post, db: asyncpg.Connection) -> None:
    response = await post_initials(
        {"product": {"code": "report_pdf", "currency": "JPY"}, "discount": 15, "coupon": "FIVEOFF"}
    )
    assert response.status == 200, await response.text()
    row = await db.fetchrow(
        "SELECT base_amount, discount_amount, coupon_amount, total_amount FROM orders "
        "WHERE id = $1",
        order_id_of(await response.json()),
    )
    # JPY 750: discount 112.5 -> 113; amount coupon 700 capped at the 637 left.
    assert row is not None and tuple(row) == (750, 113, 637, 0)


async def test_known_buyer_id_links_the_buyer(post_initials: Post, db: asyncpg.Connection) -> None:
    ann = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"
    response = await post_initials(
        {"product": {"code": "basic_1m"}, "buyer": {"email": "ann@example.com", "id": ann}}
    )
    assert response.status == 200
    buyer_id = await db.fetchval(
        "SELECT buyer_id FROM orders WHERE id = $1", order_id_of(await response.json())
    )
    assert str(buyer_id) == ann


async def test_shop_requires_a_buyer(post_initials: Post, db: asyncpg.Connection) -> None:
    before = await _order_count(db)
    response = await post_initials({"product": {"code": "basic_1m"}}, source="shop")
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "buyer_required"
    assert "shop" in error["message"]
    assert error["fields"] == {"buyer": ['required when x-source is "shop"']}

    # Listed with the other bad fields when the body has more than one problem.
    response = await post_initials({"product": {"code": 5}}, source="shop")
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"product.code", "buyer"}
    assert await _order_count(db) == before

    response = await post_initials(
        {"product": {"code": "basic_1m"}, "buyer": {"email": "shop@example.com"}}, source="shop"
    )
    assert response.status == 200


async def test_refused_requests_write_nothing(post_initials: Post, db: asyncpg.Connection) -> None:
    orders, events = await _order_count(db), await db.fetchval("SELECT count(*) FROM outbox")
    redeemed = await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = 'WELCOME10'")
    for body in (
        {"product": {"code": "nope"}, "coupon": "WELCOME10"},
        {"product": {"code": "premium_1m"}, "coupon": "WELCOME10", "subbrand": "unknown_sub"},
        {"product": {"code": "premium_1m"}, "coupon": "EXPIRED2020"},
        {"product": {"code": "premium_1m"}, "coupon": "SOLDOUT"},
        {"product": {"code": "premium_1m"}, "coupon": "WELCOME10", "discount": 101},
    ):
        response = await post_initials(body)
        assert response.status in (404, 422), body
    assert await _order_count(db) == orders
    assert await db.fetchval("SELECT count(*) FROM outbox") == events
    assert (
        await db.fetchval("SELECT times_redeemed FROM coupons WHERE code = 'WELCOME10'") == redeemed
    )


async def test_event_matches_the_asyncapi_contract(
    post_initials: Post, db: asyncpg.Connection
) -> None:
    response = await post_initials({**FULL_BODY, "sequence": "contract"})
    assert response.status == 200
    payload = await db.fetchval(
        "SELECT payload FROM outbox WHERE aggregate_id = $1", order_id_of(await response.json())
    )
    jsonschema.validate(payload, component_schema("OrderCreatedEnvelope", strict=True))
    assert payload["source"].endswith("/initials_url")
    assert payload["data"]["family"] == "initials_url"
