"""Pricing (discount first, then the coupon on the discounted price) and the pure rules of
initials/url, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from service.catalog import Coupon, Merchant, Product
from service.domain.initials import (
    buyer_required,
    check_coupon,
    check_subbrand,
    known_buyer_id,
    plan_initials_order,
    resolve_autocharge,
    resolve_product_price,
)
from service.domain.money import percent_of, round_half_up
from service.domain.pricing import CouponValue, price_with_discount_and_coupon
from service.errors import ApiError

PCT = CouponValue(percent_off=10)
# (case, base, discount %, coupon, discount amount, coupon amount, total)
PRICING_CASES = [
    ("neither: the product price", 2999, None, None, 0, 0, 2999),
    ("discount 0 changes nothing", 2999, 0, None, 0, 0, 2999),
    ("discount alone, 449.85 rounds up", 2999, 15, None, 450, 0, 2549),
    ("coupon alone on the original price", 2999, None, PCT, 0, 300, 2699),
    ("coupon on the discounted price", 2999, 10, PCT, 300, 270, 2429),
    ("amount coupon after discount", 2999, 10, CouponValue(amount_off=500), 300, 500, 2199),
    ("amount coupon never below zero", 999, 50, CouponValue(amount_off=500), 500, 499, 0),
    ("discount 100 leaves nothing for the coupon", 2999, 100, PCT, 2999, 0, 0),
    ("coupon 100 %", 2999, None, CouponValue(percent_off=100), 0, 2999, 0),
    ("half a minor unit rounds up", 1, 50, None, 1, 0, 0),
    ("1.5 rounds up to 2", 3, 50, None, 2, 0, 1),
    ("0.49 rounds down", 49, 1, None, 0, 0, 49),
    ("coupon 0.5 rounds up", 5, None, PCT, 0, 1, 4),
    ("zero price", 0, 20, PCT, 0, 0, 0),
    ("JPY discount, 675 exact", 4500, 15, None, 675, 0, 3825),
    ("JPY discount then coupon, 382.5 rounds up", 4500, 15, PCT, 675, 383, 3442),
    ("JPY 112.5 rounds up", 750, 15, None, 113, 0, 637),
    ("JPY amount coupon capped", 750, 15, CouponValue(amount_off=700), 113, 637, 0),
    ("JPY 33 % of 1500", 1500, 33, None, 495, 0, 1005),
]


@pytest.mark.parametrize(
    ("base", "discount", "coupon", "discount_amount", "coupon_amount", "total"),
    [case[1:] for case in PRICING_CASES],
    ids=[case[0] for case in PRICING_CASES],
)
def test_price_with_discount_and_coupon(
    base: int,
    discount: int | None,
    coupon: CouponValue | None,
    discount_amount: int,
    coupon_amount: int,
    total: int,
) -> None:
    price = price_with_discount_and_coupon(base, discount, coupon)
    assert (price.base, price.discount_amount, price.coupon_amount, price.total) == (
        base,
        discount_amount,
        coupon_amount,
        total,
    )
    assert price.total == base - price.discount_amount - price.coupon_amount >= 0


NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _coupon(code: str, **values: Any) -> Coupon:
    fields: dict[str, Any] = {
        "id": abs(hash(code)) % 10_000,
        "code": code,
        "percent_off": 10,
        "amount_off": None,
        "max_redemptions": None,
        "valid_from": None,
        "valid_until": None,
        "active": True,
    }
    fields.update(values)
    return Coupon(**fields)


def _merchant() -> Merchant:
    coupons = [
        _coupon("OK"),
        _coupon("USDONLY", percent_off=None, amount_off={"USD": 500}),
        _coupon("OFF", active=False),
        _coupon("LATER", valid_from=NOW + timedelta(days=1)),
        _coupon("OVER", valid_until=NOW),
    ]
    return Merchant(
        id=1,
        code="shop1",
        name="Shop one",
        default_currency="USD",
        order_prefix="S1",
        precheck_autocharge_desktop=True,
        precheck_autocharge_mobile=False,
        payment_page_url="https://{host}/initial-billing/{order_id}",
        default_host="pay.example",
        subbrands={"shop_one_com": "pay.shop-one.example"},
        products={
            "p1": Product(
                id=7,
                code="p1",
                name="P1",
                kind="one_time",
                billing_period=None,
                tier=0,
                prices={"USD": 1000, "JPY": 1500},
            )
        },
        coupons={c.code: c for c in coupons},
    )


def _error(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_currency_defaults_to_the_merchants() -> None:
    _, currency, base = resolve_product_price(_merchant(), "p1", None)
    assert (currency, base) == ("USD", 1000)


def test_unknown_product_and_unpriced_currency() -> None:
    missing = _error(resolve_product_price, _merchant(), "nope", None)
    assert (missing.status, missing.code) == (404, "product_not_found")
    assert missing.message == "Product not found by merchant and code"
    unpriced = _error(resolve_product_price, _merchant(), "p1", "EUR")
    assert (unpriced.status, unpriced.code) == (422, "currency_not_available")
    assert "EUR" in unpriced.message
    assert "product.currency" in unpriced.fields


@pytest.mark.parametrize(
    ("code", "currency", "error_code"),
    [
        ("NOPE", "USD", "coupon_not_found"),
        ("OFF", "USD", "coupon_inactive"),
        ("LATER", "USD", "coupon_not_yet_valid"),
        ("OVER", "USD", "coupon_expired"),
        ("USDONLY", "JPY", "coupon_currency_not_supported"),
    ],
)
def test_coupon_refusals(code: str, currency: str, error_code: str) -> None:
    error = _error(check_coupon, _merchant(), code, currency, NOW)
    assert (error.status, error.code, list(error.fields)) == (422, error_code, ["coupon"])


def test_usable_coupons() -> None:
    assert check_coupon(_merchant(), "OK", "JPY", NOW).code == "OK"
    assert check_coupon(_merchant(), "USDONLY", "USD", NOW).code == "USDONLY"


def test_subbrand_autocharge_buyer_rules() -> None:
    merchant = _merchant()
    check_subbrand(merchant, "shop_one_com")
    check_subbrand(merchant, None)
    assert _error(check_subbrand, merchant, "other_com").code == "subbrand_not_found"
    assert resolve_autocharge(merchant, None) == (True, False)
    assert resolve_autocharge(merchant, False) == (False, True)
    assert buyer_required("shop") and buyer_required(" Shop ")
    assert not buyer_required("web")
    assert known_buyer_id(merchant, "not-a-uuid") is None
    assert known_buyer_id(merchant, "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11") is None


def test_plan_prices_in_the_requested_currency() -> None:
    body: dict[str, Any] = {
        "product": {"code": "p1", "currency": "JPY"},
        "buyer": None,
        "metadata": None,
        "autocharge": None,
        "sequence": None,
        "discount": 15,
        "coupon": "OK",
        "subbrand": None,
    }
    order = plan_initials_order(_merchant(), body, NOW)
    assert order.currency == "JPY"
    assert (order.price.discount_amount, order.price.coupon_amount, order.price.total) == (
        225,
        128,
        1147,
    )


def test_percent_of_in_integers_equals_rounding_the_fraction() -> None:
    # percent_of computes in integers what round_half_up of the exact Fraction gives.
    for amount in [*range(0, 1200), 2999, 10**9 + 7]:
        for percent in range(0, 101):
            assert percent_of(amount, percent) == round_half_up(Fraction(amount * percent, 100))
    with pytest.raises(ValueError, match="never negative"):
        percent_of(-1, 10)
