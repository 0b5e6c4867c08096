"""The oneclick rules as plain functions over a hand-made catalog (no server, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from service.auth.merchant import MerchantRequest
from service.catalog import Buyer, ChargeMethod, Merchant, Product, Subscription
from service.domain.oneclick import (
    OneclickItemRequest,
    OneclickRequest,
    find_buyer,
    precheck_autocharge,
    prepare_oneclick_order,
    resolve_oneclick_order,
)
from service.errors import ApiError

BUYER_ID = UUID("00000000-0000-4000-8000-000000000001")
SUB_ID = UUID("00000000-0000-4000-8000-000000000002")


def merchant(*, desktop: bool = True, mobile: bool = False) -> Merchant:
    lite = Product(1, "lite", "Lite", "subscription", "P1M", 1, {"USD": 500, "SEK": 5000})
    pro = Product(2, "pro", "Pro", "subscription", "P1M", 2, {"USD": 900})
    buyer = Buyer(
        BUYER_ID,
        "dee@example.com",
        charge_methods={"cm": ChargeMethod("cm", BUYER_ID, "card", "active")},
        subscriptions={SUB_ID: Subscription(SUB_ID, BUYER_ID, "lite", "active", None)},
    )
    return Merchant(
        id=7,
        code="shop",
        name="Shop",
        default_currency="USD",
        order_prefix="SHOP",
        precheck_autocharge_desktop=desktop,
        precheck_autocharge_mobile=mobile,
        payment_page_url="https://{host}/{order_id}",
        default_host="pay.shop.example",
        products={"lite": lite, "pro": pro},
        buyers={BUYER_ID: buyer},
    )


def command(*items: OneclickItemRequest, currency: str | None = None) -> OneclickRequest:
    return OneclickRequest(
        is_mobile=True, charge_method_id="cm", currency=currency, metadata=None, products=items
    )


@pytest.mark.parametrize(
    ("desktop", "mobile"), [(True, False), (False, True), (True, True), (False, False)]
)
def test_precheck_autocharge_follows_the_platform(desktop: bool, mobile: bool) -> None:
    shop = merchant(desktop=desktop, mobile=mobile)
    assert precheck_autocharge(shop, is_mobile=False) is desktop
    assert precheck_autocharge(shop, is_mobile=True) is mobile


def test_an_upgrade_and_a_renewal_are_priced_and_turned_into_rows() -> None:
    shop = merchant()
    order = resolve_oneclick_order(
        shop,
        find_buyer(shop, str(BUYER_ID)),
        command(
            OneclickItemRequest("upgrade", "pro", SUB_ID),
            OneclickItemRequest("purchase", "lite", None),
        ),
    )
    assert (order.currency, order.total_amount, order.autocharge) == ("USD", 1400, False)
    ctx = MerchantRequest(shop, "pk", "token", "192.0.2.1", "web", "x", None)
    created_at = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    prepared = prepare_oneclick_order(order, "Abcd1234", ctx, created_at, "/order-service")
    assert prepared.row["total_amount"] == 1400
    assert prepared.row["merchant_id"] == 7
    assert prepared.items[0]["subscription_id"] == str(SUB_ID)
    assert [i["amount"] for i in prepared.items] == [900, 500]
    assert prepared.event["payload"]["subject"] == "Abcd1234"
    assert prepared.event["payload"]["data"]["order"]["createdAt"] == "2026-11-23T13:00:00Z"
    assert prepared.response_body == {"data": {"id": "Abcd1234"}, "meta": {"type": "entity"}}


def test_every_product_without_a_price_is_named_once() -> None:
    shop = merchant()
    with pytest.raises(ApiError) as caught:
        resolve_oneclick_order(
            shop,
            find_buyer(shop, str(BUYER_ID)),
            command(
                OneclickItemRequest("purchase", "pro", None),
                OneclickItemRequest("renew", None, SUB_ID),
                OneclickItemRequest("purchase", "pro", None),
                currency="SEK",
            ),
        )
    assert caught.value.code == "price_not_available"
    assert caught.value.message == "No price in SEK for product(s): pro"
    assert list(caught.value.fields) == ["products[0].productCode", "products[2].productCode"]
