"""Orders the endpoint accepts: each action alone, all four together, currencies, the
autocharge setting, and that what is stored and announced matches the request."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from tests.conftest import EYEZY_KEY
from tests.oneclick.conftest import (
    ANN,
    ANN_BASIC_SUB,
    ANN_PREMIUM_SUB,
    ANN_ULTIMATE_SUB,
    CARL,
    CARL_FAMILY_SUB,
    MONITERRO_KEY,
    Answer,
    Post,
    body_for,
    row_counts,
)

ORDER_ID = re.compile(r"^[0-9A-Za-z]{8}$")


def created_id(answer: Answer) -> str:
    assert answer.status == 200, answer.body
    assert answer.body["meta"] == {"type": "entity"}
    assert list(answer.body["data"]) == ["id"]
    order_id: str = answer.body["data"]["id"]
    assert ORDER_ID.match(order_id)
    return order_id


async def stored_order(db: asyncpg.Connection, order_id: str) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    return dict(row)


async def stored_items(db: asyncpg.Connection, order_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT position, action, product_code, subscription_id::text, period_id,"
        " unit_amount, quantity, amount FROM order_items WHERE order_id = $1 ORDER BY position",
        order_id,
    )
    return [dict(r) for r in rows]


async def stored_event(db: asyncpg.Connection, order_id: str) -> dict[str, Any]:
    rows = await db.fetch("SELECT * FROM outbox WHERE aggregate_id = $1", order_id)
    assert len(rows) == 1
    event: dict[str, Any] = dict(rows[0])
    return event


def item(
    position: int, action: str, code: str, subscription: str | None, amount: int
) -> dict[str, Any]:
    return {
        "position": position,
        "action": action,
        "product_code": code,
        "subscription_id": subscription,
        "period_id": None,
        "unit_amount": amount,
        "quantity": 1,
        "amount": amount,
    }


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"action": "purchase", "productCode": "report_pdf"},
            item(0, "purchase", "report_pdf", None, 499),
        ),
        (
            {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
            item(0, "upgrade", "premium_1m", ANN_BASIC_SUB, 2999),
        ),
        (
            {"action": "downgrade", "subscriptionId": ANN_ULTIMATE_SUB, "productCode": "basic_1m"},
            item(0, "downgrade", "basic_1m", ANN_ULTIMATE_SUB, 999),
        ),
        (
            {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB},
            item(0, "renew", "premium_1m", ANN_PREMIUM_SUB, 2999),
        ),
        (
            {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "premium_1m"},
            item(0, "renew", "premium_1m", ANN_PREMIUM_SUB, 2999),
        ),
    ],
    ids=["purchase", "upgrade", "downgrade", "renew", "renew-naming-its-product"],
)
async def test_each_action_alone(
    post_oneclick: Post, db: asyncpg.Connection, entry: dict[str, Any], expected: dict[str, Any]
) -> None:
    order_id = created_id(await post_oneclick(body_for(entry)))
    order = await stored_order(db, order_id)
    assert (order["family"], order["currency"]) == ("oneclick", "USD")
    assert order["base_amount"] == order["total_amount"] == expected["amount"]
    assert await stored_items(db, order_id) == [expected]


async def test_all_four_actions_in_one_order_are_stored_and_announced_as_sent(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    metadata = {"campaign": "spring", "attempt": 2, "vip": True, "note": None, "ratio": 0.5}
    body = body_for(
        {"action": "purchase", "productCode": "report_pdf"},
        {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "ultimate_1m"},
        {"action": "downgrade", "subscriptionId": ANN_ULTIMATE_SUB, "productCode": "premium_1y"},
        {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB},
        currency="USD",
        metaData=metadata,
    )
    before = await row_counts(db)
    answer = await post_oneclick(body, ga_client_id="GA1.2.42.42")
    order_id = created_id(answer)
    after = await row_counts(db)
    assert (after.orders, after.items, after.outbox) == (
        before.orders + 1,
        before.items + 4,
        before.outbox + 1,
    )

    expected_items = [
        item(0, "purchase", "report_pdf", None, 499),
        item(1, "upgrade", "ultimate_1m", ANN_BASIC_SUB, 4999),
        item(2, "downgrade", "premium_1y", ANN_ULTIMATE_SUB, 29999),
        item(3, "renew", "premium_1m", ANN_PREMIUM_SUB, 2999),
    ]
    total = 499 + 4999 + 29999 + 2999
    assert await stored_items(db, order_id) == expected_items

    order = await stored_order(db, order_id)
    assert {k: order[k] for k in order if order[k] is not None} | {"created_at": None} == {
        "id": order_id,
        "merchant_id": order["merchant_id"],
        "family": "oneclick",
        "status": "created",
        "currency": "USD",
        "base_amount": total,
        "discount_amount": 0,
        "coupon_amount": 0,
        "total_amount": total,
        "autocharge": True,  # eyezy, desktop
        "autocharge_explicit": False,
        "is_mobile": False,
        "buyer_id": order["buyer_id"],
        "buyer": {"id": ANN, "email": "ann@example.com"},
        "charge_method_id": "cm_ann_visa",
        "buyer_ip": order["buyer_ip"],
        "source": "web",
        "source_id": "checkout",
        "ga_client_id": "GA1.2.42.42",
        "request_token": answer.token,
        "metadata": metadata,
        "created_at": None,
    }
    assert str(order["buyer_id"]) == ANN
    assert str(order["buyer_ip"]) == "203.0.113.10"

    event = await stored_event(db, order_id)
    assert event["routing_key"] == "order.created"
    assert event["published_at"] is None or event["published_at"] >= order["created_at"]
    envelope = event["payload"]
    assert envelope["subject"] == order_id
    assert envelope["id"] == str(event["event_id"])
    assert envelope["data"]["family"] == "oneclick"
    assert envelope["data"]["metaData"] == metadata
    data = envelope["data"]["order"]
    assert data["id"] == order_id
    assert data["merchant"]["code"] == "eyezy"
    assert data["buyer"] == {
        "id": ANN,
        "email": "ann@example.com",
        "firstName": None,
        "lastName": None,
        "country": None,
        "locale": None,
    }
    assert data["customer"] is None
    assert data["chargeMethodId"] == "cm_ann_visa"
    assert data["currency"] == "USD"
    assert data["amounts"] == {
        "base": total,
        "discountPercent": None,
        "discount": 0,
        "coupon": 0,
        "total": total,
    }
    assert data["coupon"] is None
    assert (data["autocharge"], data["autochargeExplicit"], data["isMobile"]) == (
        True,
        False,
        False,
    )
    assert data["request"] == {
        "buyerIp": "203.0.113.10",
        "source": "web",
        "id": "checkout",
        "googleAnalyticsClientId": "GA1.2.42.42",
    }
    assert [
        (i["position"], i["action"], i["productCode"], i["subscriptionId"], i["amount"])
        for i in data["items"]
    ] == [
        (i["position"], i["action"], i["product_code"], i["subscription_id"], i["amount"])
        for i in expected_items
    ]


@pytest.mark.parametrize(
    ("currency", "amounts"),
    [("USD", (2999, 4999)), ("EUR", (2799, 4599)), ("JPY", (4500, 7500))],
)
async def test_prices_are_taken_in_the_requested_currency(
    post_oneclick: Post, db: asyncpg.Connection, currency: str, amounts: tuple[int, int]
) -> None:
    body = body_for(
        {"action": "purchase", "productCode": "premium_1m"},
        {"action": "upgrade", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "ultimate_1m"},
        currency=currency,
    )
    order_id = created_id(await post_oneclick(body))
    order = await stored_order(db, order_id)
    assert order["currency"] == currency
    assert order["total_amount"] == sum(amounts)
    assert [i["unit_amount"] for i in await stored_items(db, order_id)] == list(amounts)


@pytest.mark.parametrize(
    ("key", "buyer", "body", "currency", "amount"),
    [
        (
            EYEZY_KEY,
            ANN,
            body_for({"action": "purchase", "productCode": "report_pdf"}),
            "USD",
            499,
        ),
        (
            MONITERRO_KEY,
            CARL,
            {
                "isMobile": True,
                "chargeMethodId": "cm_carl_visa",
                "metaData": {"test": "default-currency"},
                "products": [
                    {
                        "action": "upgrade",
                        "subscriptionId": CARL_FAMILY_SUB,
                        "productCode": "family_plus_1m",
                    }
                ],
            },
            "EUR",
            2999,
        ),
    ],
    ids=["eyezy-USD", "moniterro-EUR"],
)
async def test_without_currency_the_merchants_default_currency_is_used(
    post_oneclick: Post,
    db: asyncpg.Connection,
    key: tuple[str, str],
    buyer: str,
    body: dict[str, Any],
    currency: str,
    amount: int,
) -> None:
    order_id = created_id(await post_oneclick(body, buyer=buyer, key=key))
    order = await stored_order(db, order_id)
    assert (order["currency"], order["total_amount"]) == (currency, amount)


@pytest.mark.parametrize(
    ("merchant", "is_mobile", "autocharge"),
    [
        ("eyezy", False, True),
        ("eyezy", True, False),
        ("moniterro", False, False),
        ("moniterro", True, True),
    ],
)
async def test_is_mobile_picks_the_merchants_precheck_autocharge_setting(
    post_oneclick: Post, db: asyncpg.Connection, merchant: str, is_mobile: bool, autocharge: bool
) -> None:
    if merchant == "eyezy":
        key, buyer, method, product = EYEZY_KEY, ANN, "cm_ann_visa", "report_pdf"
    else:
        key, buyer, method, product = MONITERRO_KEY, CARL, "cm_carl_visa", "family_1m"
    body = {
        "isMobile": is_mobile,
        "chargeMethodId": method,
        "products": [{"action": "purchase", "productCode": product}],
        "metaData": {"test": f"{merchant}-{is_mobile}"},
    }
    answer = await post_oneclick(body, buyer=buyer, key=key)
    order_id = created_id(answer)
    order = await stored_order(db, order_id)
    assert (order["is_mobile"], order["autocharge"]) == (is_mobile, autocharge)
    event = await stored_event(db, order_id)
    assert event["payload"]["data"]["order"]["autocharge"] is autocharge
    assert event["payload"]["data"]["order"]["isMobile"] is is_mobile


async def test_google_analytics_header_is_optional(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    body = body_for({"action": "purchase", "productCode": "report_pdf"})
    order_id = created_id(await post_oneclick(body, ga_client_id=None))
    order = await stored_order(db, order_id)
    assert order["ga_client_id"] is None


async def test_the_buyer_id_is_matched_whatever_its_letter_case(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    body = body_for({"action": "purchase", "productCode": "report_pdf"})
    order_id = created_id(await post_oneclick(body, buyer=ANN.upper()))
    assert str((await stored_order(db, order_id))["buyer_id"]) == ANN


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_order(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    body = body_for({"action": "renew", "subscriptionId": ANN_PREMIUM_SUB})
    key = {"Idempotency-Key": f"oneclick-retry-{id(body)}"}
    first = await post_oneclick(body, headers=key)
    before = await row_counts(db)
    again = await post_oneclick(body, headers=key)
    assert again.status == 200
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await row_counts(db) == before


def orders_created_count() -> float:
    value = REGISTRY.get_sample_value("order_service_orders_created_total", {"family": "oneclick"})
    return value or 0.0


async def test_each_order_counts_once_in_the_orders_created_metric(post_oneclick: Post) -> None:
    before = orders_created_count()
    created_id(await post_oneclick(body_for({"action": "purchase", "productCode": "report_pdf"})))
    expired = body_for({"action": "purchase", "productCode": "report_pdf"})
    refused = await post_oneclick(expired | {"chargeMethodId": "cm_ann_old"})
    assert refused.status == 422
    assert orders_created_count() == before + 1
