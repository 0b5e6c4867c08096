"""Requests the endpoint refuses: each rule with its exact error, other merchants' data,
and that a refused request writes nothing (no order, no items, no outbox event)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from service.errors import PRODUCT_NOT_FOUND
from tests.oneclick.conftest import (
    ANN,
    ANN_BASIC_SUB,
    ANN_CANCELLED_SUB,
    ANN_PREMIUM_SUB,
    ANN_ULTIMATE_SUB,
    BOB_BASIC_SUB,
    CARL,
    CARL_FAMILY_SUB,
    Answer,
    Post,
    body_for,
    row_counts,
)

PURCHASE_REPORT = {"action": "purchase", "productCode": "report_pdf"}


async def refused(post_oneclick: Post, db: asyncpg.Connection, body: Any, **post: Any) -> Answer:
    """Posts `body` and checks that nothing at all was written."""
    before = await row_counts(db)
    answer = await post_oneclick(body, **post)
    assert answer.status >= 400, answer.body
    assert answer.body["meta"]["type"] == "error"
    assert await row_counts(db) == before
    return answer


@pytest.mark.parametrize(
    "buyer",
    [
        CARL,  # moniterro's buyer, asked for with eyezy's key
        str(uuid.uuid4()),
        "not-a-uuid",
        # Ann's own id, but not in the 8-4-4-4-12 form the document gives.
        f"urn:uuid:{ANN}",
        ANN.replace("-", ""),
    ],
    ids=["other-merchants-buyer", "unknown-uuid", "malformed", "urn", "no-hyphens"],
)
async def test_a_buyer_that_is_not_the_merchants_is_not_found(
    post_oneclick: Post, db: asyncpg.Connection, buyer: str
) -> None:
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT), buyer=buyer)
    assert answer.status == 404
    assert answer.error["code"] == "buyer_not_found"
    assert answer.error["message"] == f"Buyer {buyer!r} not found"
    assert list(answer.error["fields"]) == ["buyerId"]


async def test_a_long_buyer_id_is_not_repeated_whole(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT), buyer="x" * 5000)
    assert answer.status == 404
    assert answer.error["message"] == f"Buyer {'x' * 64 + '...'!r} not found"


@pytest.mark.parametrize(
    ("method", "status", "code"),
    [
        ("cm_bob_paypal", 404, "charge_method_not_found"),  # another buyer of eyezy
        ("cm_carl_visa", 404, "charge_method_not_found"),  # moniterro's buyer
        ("cm_nobody", 404, "charge_method_not_found"),
        ("cm_ann_old", 422, "charge_method_expired"),
        ("cm_ann_blocked", 422, "charge_method_disabled"),
    ],
)
async def test_the_charge_method_must_be_the_buyers_and_usable(
    post_oneclick: Post, db: asyncpg.Connection, method: str, status: int, code: str
) -> None:
    body = body_for(PURCHASE_REPORT, chargeMethodId=method)
    answer = await refused(post_oneclick, db, body)
    assert (answer.status, answer.error["code"]) == (status, code)
    assert method in answer.error["message"]
    assert list(answer.error["fields"]) == ["chargeMethodId"]


@pytest.mark.parametrize(
    ("subscription", "status", "code"),
    [
        (BOB_BASIC_SUB, 404, "subscription_not_found"),  # another buyer of eyezy
        (CARL_FAMILY_SUB, 404, "subscription_not_found"),  # moniterro's
        (str(uuid.uuid4()), 404, "subscription_not_found"),
        (ANN_CANCELLED_SUB, 422, "subscription_not_active"),
    ],
    ids=["other-buyer", "other-merchant", "unknown", "cancelled"],
)
@pytest.mark.parametrize("action", ["upgrade", "downgrade", "renew"])
async def test_subscriptions_must_be_active_subscriptions_of_the_buyer(
    post_oneclick: Post,
    db: asyncpg.Connection,
    subscription: str,
    status: int,
    code: str,
    action: str,
) -> None:
    entry: dict[str, Any] = {"action": action, "subscriptionId": subscription}
    if action != "renew":
        entry["productCode"] = "ultimate_1m" if action == "upgrade" else "basic_1m"
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT, entry))
    assert (answer.status, answer.error["code"]) == (status, code)
    assert subscription in answer.error["message"]
    assert list(answer.error["fields"]) == ["products[1].subscriptionId"]


@pytest.mark.parametrize(
    ("action", "subscription", "target", "code"),
    [
        ("upgrade", ANN_PREMIUM_SUB, "basic_1m", "invalid_upgrade"),  # 2 -> 1
        ("upgrade", ANN_PREMIUM_SUB, "premium_1y", "invalid_upgrade"),  # 2 -> 2
        ("upgrade", ANN_PREMIUM_SUB, "premium_1m", "invalid_upgrade"),  # its own product
        ("downgrade", ANN_BASIC_SUB, "premium_1m", "invalid_downgrade"),  # 1 -> 2
        ("downgrade", ANN_ULTIMATE_SUB, "ultimate_1m", "invalid_downgrade"),  # 3 -> 3
        ("downgrade", ANN_PREMIUM_SUB, "premium_1y", "invalid_downgrade"),  # 2 -> 2
    ],
)
async def test_upgrades_go_up_and_downgrades_go_down_a_tier(
    post_oneclick: Post,
    db: asyncpg.Connection,
    action: str,
    subscription: str,
    target: str,
    code: str,
) -> None:
    entry = {"action": action, "subscriptionId": subscription, "productCode": target}
    answer = await refused(post_oneclick, db, body_for(entry))
    assert (answer.status, answer.error["code"]) == (422, code)
    direction = "higher" if action == "upgrade" else "lower"
    article = "an" if action == "upgrade" else "a"
    assert f"{article} {action} must move to a {direction} tier" in answer.error["message"]
    assert list(answer.error["fields"]) == ["products[0].productCode"]


async def test_a_subscription_cannot_be_downgraded_to_a_one_time_product(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    entry = {"action": "downgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "report_pdf"}
    answer = await refused(post_oneclick, db, body_for(entry))
    assert (answer.status, answer.error["code"]) == (422, "invalid_downgrade")
    assert "not a subscription product" in answer.error["message"]


@pytest.mark.parametrize(
    "entry",
    [
        {"action": "purchase", "productCode": "no_such_product"},
        {"action": "purchase", "productCode": "family_1m"},  # moniterro's product
        {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "family_plus_1m"},
        {"action": "downgrade", "subscriptionId": ANN_ULTIMATE_SUB, "productCode": "nope"},
        {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "nope"},
    ],
    ids=["unknown", "other-merchant", "upgrade-target", "downgrade-target", "renew-named"],
)
async def test_a_product_unknown_to_the_merchant_is_404_as_documented(
    post_oneclick: Post, db: asyncpg.Connection, entry: dict[str, Any]
) -> None:
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT, entry))
    assert answer.status == 404
    assert answer.error["code"] == "product_not_found"
    assert answer.error["message"] == "Product not found by merchant and code" == PRODUCT_NOT_FOUND
    assert list(answer.error["fields"]) == ["products[1].productCode"]


async def test_a_renewal_that_names_another_product_is_refused(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    entry = {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "basic_1m"}
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT, entry))
    assert (answer.status, answer.error["code"]) == (422, "renew_product_mismatch")
    assert answer.error["fields"] == {
        "products[1].productCode": ["renew keeps the subscription's product 'premium_1m'"]
    }


@pytest.mark.parametrize(
    ("currency", "entries", "fields", "named"),
    [
        (
            "JPY",
            [{"action": "purchase", "productCode": "premium_1y"}],
            ["products[0]"],
            "premium_1y",
        ),
        ("EUR", [PURCHASE_REPORT], ["products[0]"], "report_pdf"),
        (
            "EUR",
            [
                {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB},
                PURCHASE_REPORT,
                {"action": "purchase", "productCode": "premium_1y"},
                PURCHASE_REPORT,
            ],
            ["products[1]", "products[3]"],
            "report_pdf",
        ),
        (
            "JPY",
            [{"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1y"}],
            ["products[0]"],
            "premium_1y",
        ),
        ("GBP", [{"action": "renew", "subscriptionId": ANN_PREMIUM_SUB}], None, "premium_1m"),
    ],
    ids=["JPY-purchase", "EUR-purchase", "EUR-several", "JPY-upgrade", "GBP-renew"],
)
async def test_every_product_needs_a_price_in_the_currency(
    post_oneclick: Post,
    db: asyncpg.Connection,
    currency: str,
    entries: list[dict[str, Any]],
    fields: list[str] | None,
    named: str,
) -> None:
    answer = await refused(post_oneclick, db, body_for(*entries, currency=currency))
    assert (answer.status, answer.error["code"]) == (422, "price_not_available")
    assert answer.error["message"] == f"No price in {currency} for product(s): {named}"
    if fields is None:  # a renewal has no productCode: the subscription is named
        assert list(answer.error["fields"]) == ["products[0].subscriptionId"]
    else:
        assert list(answer.error["fields"]) == [f"{f}.productCode" for f in fields]


async def test_rule_1_one_subscription_per_request_names_both_items(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    body = body_for(
        {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
        PURCHASE_REPORT,
        {"action": "renew", "subscriptionId": ANN_BASIC_SUB},
    )
    answer = await refused(post_oneclick, db, body)
    assert (answer.status, answer.error["code"]) == (422, "validation_error")
    fields = answer.error["fields"]
    assert set(fields) == {"products[0].subscriptionId", "products[2].subscriptionId"}
    assert "products[0].subscriptionId" in answer.error["message"]
    assert "products[2].subscriptionId" in answer.error["message"]
    assert "also in products[2]" in fields["products[0].subscriptionId"][0]
    assert "also in products[0]" in fields["products[2].subscriptionId"][0]


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        (
            {"action": "purchase", "productCode": "basic_1m", "subscriptionId": ANN_BASIC_SUB},
            "products[1].subscriptionId",
        ),
        ({"action": "upgrade", "productCode": "premium_1m"}, "products[1].subscriptionId"),
        ({"action": "downgrade", "subscriptionId": ANN_ULTIMATE_SUB}, "products[1].productCode"),
    ],
)
async def test_rule_2_a_field_foreign_to_the_action_is_refused_by_its_path(
    post_oneclick: Post, db: asyncpg.Connection, entry: dict[str, Any], path: str
) -> None:
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT, entry))
    assert (answer.status, answer.error["code"]) == (422, "validation_error")
    assert list(answer.error["fields"]) == [path]
    assert answer.error["message"] == f"The request has invalid fields: {path}"


async def test_every_bad_field_is_listed_at_once(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    body = {
        "isMobile": "yes",
        "currency": "usd",
        "products": [{"action": "sell"}],
        "extra": 1,
    }
    answer = await refused(post_oneclick, db, body)
    assert answer.status == 422
    assert set(answer.error["fields"]) == {
        "isMobile",
        "chargeMethodId",
        "currency",
        "products[0].action",
        "extra",
    }


async def test_a_body_that_is_not_json_is_400(post_oneclick: Post, db: asyncpg.Connection) -> None:
    answer = await refused(post_oneclick, db, b"{not json")
    assert (answer.status, answer.error["code"]) == (400, "json_parser_error")


async def test_the_buyer_is_checked_before_the_body(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    answer = await refused(post_oneclick, db, {"products": []}, buyer=str(uuid.uuid4()))
    assert (answer.status, answer.error["code"]) == (404, "buyer_not_found")


async def test_a_refused_request_releases_its_idempotency_key(
    post_oneclick: Post, db: asyncpg.Connection
) -> None:
    key = {"Idempotency-Key": f"oneclick-fix-{uuid.uuid4()}"}
    bad = body_for(PURCHASE_REPORT, chargeMethodId="cm_ann_old")
    assert (await refused(post_oneclick, db, bad, headers=key)).status == 422
    fixed = await post_oneclick(body_for(PURCHASE_REPORT), headers=key)
    assert fixed.status == 200, fixed.body


async def test_mandatory_headers_are_checked(post_oneclick: Post, db: asyncpg.Connection) -> None:
    answer = await refused(post_oneclick, db, body_for(PURCHASE_REPORT), buyer_ip="not-an-ip")
    assert (answer.status, answer.error["code"]) == (422, "invalid_headers")
    assert list(answer.error["fields"]) == ["headers.x-buyer-ip"]


async def test_ann_is_a_buyer_of_eyezy(post_oneclick: Post) -> None:
    # guards the fixtures: the refusals above are not refusals of every request
    assert (await post_oneclick(body_for(PURCHASE_REPORT), buyer=ANN)).status == 200
