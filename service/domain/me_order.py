"""Order rules of the Payway-style customer endpoint, and the rows one such order writes.

As in Payway, the period decides how the order is paid: the order takes the period's
payment method, and this endpoint accepts only invoice and autogiro periods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.envelope import order_created_event
from service.catalog import Merchant, Period, Product
from service.errors import BadRequest
from service.handlers.common import order_row
from service.order_store import PreparedOrder

FAMILY = "me_order"
SUPPORTED_PAYMENT_METHODS = ("invoice", "autogiro")


@dataclass(frozen=True, slots=True)
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


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def prepare_me_order(order: MeOrder, order_id: str, *, event_source: str) -> PreparedOrder:
    """The rows of `order` under `order_id`. The reference (`PREFIX-<n>`) and the customer's
    address (given, else their default) are filled in by place_order in the same transaction.
    """
    request = order.request
    details: dict[str, Any] = {
        "period_id": order.period.id,
        "payment_method": order.payment_method,
        "start_date": _iso(order.start_date),
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
        created_at=order.created_at.isoformat(),
    )
    item = {
        "order_id": order_id,
        "position": 0,
        "action": "purchase",
        "product_id": order.product.id,
        "product_code": order.product.code,
        "period_id": order.period.id,
        "unit_amount": order.amount,
        "quantity": 1,
        "amount": order.amount,
    }
    event_order = {
        "id": order_id,
        "reference": None,  # set by place_order
        "status": "created",
        "merchant": {"id": order.merchant.id, "code": order.merchant.code},
        "customer": {"account": order.account, "address": None},  # set by place_order
        "items": [
            {
                "position": 0,
                "action": "purchase",
                "productCode": order.product.code,
                "productName": order.product.name,
                "periodId": order.period.id,
                "unitAmount": order.amount,
                "quantity": 1,
                "amount": order.amount,
            }
        ],
        "currency": order.currency,
        "amounts": {"base": order.amount, "discount": 0, "coupon": 0, "total": order.amount},
        "autocharge": None,
        "paymentMethod": order.payment_method,
        "period": {
            "id": order.period.id,
            "length": order.period.length,
            "productCode": order.product.code,
        },
        "startDate": details["start_date"],
        "invoiceDeliveryMethod": details["invoice_delivery_method"],
        "merchantReference": details["merchant_reference"],
        "trafficSource": details["traffic_source"],
        "request": {
            "browserIp": details["browser_ip"],
            "language": details["language"],
            "userAgent": details["user_agent"],
            "receiptUrl": details["receipt_url"],
        },
        "createdAt": _iso(order.created_at),
    }
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
