"""Prices an order line: discount first, then the coupon on the discounted price."""

from __future__ import annotations

from service.domain.money import percent_of
from service.records import record


@record
class CouponValue:
    """What a coupon takes off: a percentage, or a fixed amount in the order's currency."""

    percent_off: int | None = None
    amount_off: int | None = None


@record
class Price:
    base: int
    discount_percent: int | None
    discount_amount: int
    coupon_amount: int
    total: int


def price_with_discount_and_coupon(
    base: int, discount_percent: int | None, coupon: CouponValue | None
) -> Price:
    """The document's order: (1) discount on the price, (2) coupon on the discounted price,
    (3) coupon alone on the original price, (4) discount alone, (5) neither: the price.
    Each reduction is rounded half-up to the minor unit; the total never goes below zero.
    """
    discount_amount = percent_of(base, discount_percent) if discount_percent else 0
    after_discount = base - discount_amount
    coupon_amount = 0
    if coupon is not None:
        if coupon.percent_off is not None:
            coupon_amount = percent_of(after_discount, coupon.percent_off)
        elif coupon.amount_off is not None:
            coupon_amount = coupon.amount_off
        coupon_amount = min(coupon_amount, after_discount)
    return Price(
        base=base,
        discount_percent=discount_percent,
        discount_amount=discount_amount,
        coupon_amount=coupon_amount,
        total=after_discount - coupon_amount,
    )
