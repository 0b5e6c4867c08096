"""A merchant sees only its own products, coupons, sub-brands, buyers and orders."""

from __future__ import annotations

import asyncpg

from tests.initials.conftest import MONITERRO_KEY, Post, order_id_of

ANN = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"  # a buyer of eyezy


async def test_other_merchants_product_is_not_found(post_initials: Post) -> None:
    response = await post_initials({"product": {"code": "premium_1m"}}, key=MONITERRO_KEY)
    assert response.status == 404
    error = (await response.json())["error"]
    assert (error["code"], error["message"]) == (
        "product_not_found",
        "Product not found by merchant and code",
    )


async def test_other_merchants_coupon_is_not_found(post_initials: Post) -> None:
    response = await post_initials(
        {"product": {"code": "family_1m"}, "coupon": "WELCOME10"}, key=MONITERRO_KEY
    )
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "coupon_not_found"


async def test_other_merchants_subbrand_is_not_found(post_initials: Post) -> None:
    response = await post_initials(
        {"product": {"code": "family_1m"}, "subbrand": "eyezy_app_org"}, key=MONITERRO_KEY
    )
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "subbrand_not_found"


async def test_own_catalog_works_and_other_buyers_are_never_linked(
    post_initials: Post, db: asyncpg.Connection
) -> None:
    response = await post_initials(
        {
            "product": {"code": "family_1m"},
            "coupon": "MONI20",
            "subbrand": "moniterro_com",
            "buyer": {"email": "ann@example.com", "id": ANN},
        },
        key=MONITERRO_KEY,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    order_id = order_id_of(body)
    assert body["data"]["url"].startswith("https://pay-front-moniterro-com.example/")
    row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    # moniterro: EUR by default, precheck autocharge (desktop) off; 20 % of 1999 = 399.8.
    assert (row["currency"], row["base_amount"], row["coupon_amount"], row["total_amount"]) == (
        "EUR",
        1999,
        400,
        1599,
    )
    assert (row["autocharge"], row["autocharge_explicit"]) == (False, False)
    assert row["buyer_id"] is None
    assert row["buyer"]["id"] == ANN


async def test_other_merchants_order_is_not_found(post_initials: Post, get_order: Post) -> None:
    eyezy_order = order_id_of(await (await post_initials({"product": {"code": "basic_1m"}})).json())
    response = await get_order(eyezy_order, key=MONITERRO_KEY)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "order_not_found"
    assert (await get_order(eyezy_order)).status == 200
