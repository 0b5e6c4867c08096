"""Order rules of the Payway-style customer endpoint, and the rows one such order writes.

As in Payway, the period decides how the order is paid: the order takes the period's
payment method, and this endpoint accepts only invoice and autogiro periods.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from events.envelope import order_created_event
from events.order_data import (
    OrderAmounts,
    OrderItem,
    OrderPayment,
    RequestOrigin,
    isoformat_of,
    order_event_data,
    rfc3339_utc,
)
from service.catalog import Merchant, Period, Product
from service.errors import BadRequest
from service.order_store import PreparedOrder, order_item_row, order_row
from service.records import record

FAMILY: Final = "me_order"
SUPPORTED_PAYMENT_METHODS = ("invoice", "autogiro")


@record
class MeOrder:
    """A customer's order that passed every rule, ready to be written under an id."""

    merchant: Merchant
    account: str
    product: Product
    period: Period
    currency: str
    amount: int
    start_date: datetime
    created_at: datetime
    request: Mapping[str, Any]  # the loaded body (schemas/me_order.py)

    @property
    def payment_method(self) -> str:
        return self.period.payment_method


def invalid_parameter(field: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_parameter", fields={field: [message]})


def period_price(merchant: Merchant, period: Period) -> tuple[str, int]:
    """The period's price in the merchant's default currency, else in its first currency."""
    if merchant.default_currency in period.prices:
        return merchant.default_currency, period.prices[merchant.default_currency]
    if not period.prices:
        raise invalid_parameter("period_id", "Parameter names a period that has no price")
    currency = min(period.prices)
    return currency, period.prices[currency]


def check_me_order(
    merchant: Merchant, account: str, request: Mapping[str, Any], *, now: datetime
) -> MeOrder:
    """Applies the catalog rules to a loaded request; raises invalid_parameter on the field."""
    product = merchant.products.get(request["product_code"])
    if product is None:
        raise invalid_parameter("product_code", "Parameter must be a product code of the merchant")
    period = product.periods.get(request["period_id"])
    if period is None:
        raise invalid_parameter("period_id", "Parameter must be a period of the product")
    if period.payment_method not in SUPPORTED_PAYMENT_METHODS:
        raise invalid_parameter(
            "period_id",
            f"The period's payment method is {period.payment_method}; this endpoint supports "
            "only the payment methods invoice and autogiro",
        )
    if "invoice_delivery_method" in request and period.payment_method != "invoice":
        raise invalid_parameter(
            "invoice_delivery_method",
            "Parameter applies only when the payment method is invoice",
        )
    currency, amount = period_price(merchant, period)
    return MeOrder(
        merchant=merchant,
        account=account,
        product=product,
        period=period,
        currency=currency,
        amount=amount,
        start_date=request.get("start_date") or now,
        created_at=now,
        request=request,
    )


def prepare_me_order(order: MeOrder, order_id: str, *, event_source: str) -> PreparedOrder:
    """The rows of `order` under `order_id`. The reference (`PREFIX-<n>`) and the customer's
    address (given, else their default) are filled in by place_order in the same transaction.
    """
    request = order.request
    details: dict[str, Any] = {
        "period_id": order.period.id,
        "payment_method": order.payment_method,
        "start_date": rfc3339_utc(order.start_date),
        "browser_ip": request["browser_ip"],
        "language": request["language"],
        "user_agent": request["user_agent"],
        "receipt_url": request["receipt_url"],
        "traffic_source": request.get("traffic_source"),
        "merchant_reference": request.get("merchant_reference"),
        "invoice_delivery_method": request.get("invoice_delivery_method"),
    }
    # Only a given address goes in: place_order reads a missing key as "use the default",
    # while a JSON null would erase the default.
    if "address" in request:
        details["address"] = request["address"]
    row = order_row(
        id=order_id,
        family=FAMILY,
        merchant_id=order.merchant.id,
        customer_account=order.account,
        currency=order.currency,
        base_amount=order.amount,
        total_amount=order.amount,
        buyer_ip=request["browser_ip"],
        details=details,
        created_at=isoformat_of(order.created_at),
    )
    item = order_item_row(
        order_id,
        0,
        product_id=order.product.id,
        product_code=order.product.code,
        unit_amount=order.amount,
        period_id=order.period.id,
    )
    # `reference` and `customer.address` stay null here: place_order sets both.
    event_order = order_event_data(
        order_id=order_id,
        family=FAMILY,
        merchant=order.merchant,
        currency=order.currency,
        amounts=OrderAmounts.undiscounted(order.amount),
        items=[
            OrderItem(
                position=0,
                action="purchase",
                product_code=order.product.code,
                product_name=order.product.name,
                unit_amount=order.amount,
                period_id=order.period.id,
            )
        ],
        request=RequestOrigin(buyer_ip=request["browser_ip"]),
        created_at=order.created_at,
        customer_account=order.account,
        payment=OrderPayment(
            method=order.payment_method,
            period_id=order.period.id,
            start_date=order.start_date,
            receipt_url=request["receipt_url"],
            language=request["language"],
            user_agent=request["user_agent"],
            invoice_delivery_method=request.get("invoice_delivery_method"),
            merchant_reference=request.get("merchant_reference"),
            traffic_source=request.get("traffic_source"),
        ),
    )
    event = order_created_event(
        source=event_source,
        family=FAMILY,
        order_id=order_id,
        created_at=order.created_at,
        order=event_order,
        metadata=None,
    )
    return PreparedOrder(
        row=row,
        items=[item],
        event=event,
        response_status=200,
        response_body={"id": order_id, "order_id": None},
    )
