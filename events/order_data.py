"""`data.order` of the order-created event: ONE shape for every endpoint family.

Every key is always present, null where it does not apply to the family, so a consumer
reads one shape whichever endpoint created the order. The contract is
components/schemas/Order in events/asyncapi.json; tests/events/test_order_shape.py keeps
the two in step.

Two keys are filled in later by the database, in the order's transaction: `reference`
and `customer.address` of a me_order order (place_order in
sql/migrations/0003_place_order.sql sets them with jsonb_set), so both are emitted here,
as null, for that function to replace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from service.records import record

Family = Literal["initials_url", "oneclick", "me_order"]
CREATED = "created"


class MerchantIdentity(Protocol):
    """What the event names of a merchant (service.catalog.Merchant has both)."""

    @property
    def id(self) -> int: ...

    @property
    def code(self) -> str: ...


@record
class OrderAmounts:
    """The order's money in minor units: base, the reductions taken off it, and the total."""

    base: int
    total: int
    discount_percent: int | None = None
    discount: int = 0
    coupon: int = 0

    @classmethod
    def undiscounted(cls, total: int) -> OrderAmounts:
        """Amounts of an order that takes no discount and no coupon."""
        return cls(base=total, total=total)


@record
class OrderItem:
    """One line of the order. `action` is purchase, upgrade, downgrade or renew;
    `subscription_id` is set for oneclick upgrades, downgrades and renewals, `period_id`
    for me_order (its Payway-style period)."""

    position: int
    action: str
    product_code: str
    product_name: str
    unit_amount: int
    quantity: int = 1
    subscription_id: str | None = None
    period_id: str | None = None

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


@record
class OrderBuyer:
    """The merchant's buyer: initials_url sends what the request named, oneclick the
    catalog's buyer (id and email only)."""

    email: str
    id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    locale: str | None = None


@record
class OrderPayment:
    """How a me_order order is paid and where the customer ordered it from."""

    method: str
    period_id: str
    start_date: datetime
    receipt_url: str
    language: str
    user_agent: str
    invoice_delivery_method: str | None = None
    merchant_reference: str | None = None
    traffic_source: str | None = None


@record
class RequestOrigin:
    """Where the request came from: the end customer's IP, and for signed merchant
    requests the x-source, x-id and x-google-analytics-client-id headers."""

    buyer_ip: str
    source: str | None = None
    source_id: str | None = None
    ga_client_id: str | None = None


# The datetime isoformat_of() formatted last, and its text. An order's created_at is
# formatted for its row, its event's data and its envelope (a me_order's start_date is
# most often the same moment, twice more): once is enough. Holding the datetime keeps
# its id from going to another one, so `is` tells it is the same object.
_last_formatted: tuple[datetime | None, str] = (None, "")


def isoformat_of(moment: datetime) -> str:
    """`moment.isoformat()`, formatted once for the same datetime asked for in turn."""
    global _last_formatted
    last, text = _last_formatted
    if moment is not last:
        text = moment.isoformat()
        # One tuple, replaced whole: a reader never pairs one moment with another's text.
        _last_formatted = (moment, text)
    return text


def rfc3339_utc(moment: datetime) -> str:
    """`moment` in UTC as RFC 3339 with a `Z` (microseconds kept when there are any)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined UTC instant")
    # astimezone() gives a UTC datetime back as it is, so its text is formatted once.
    return isoformat_of(moment.astimezone(UTC)).replace("+00:00", "Z")


def order_event_data(
    *,
    order_id: str,
    family: Family,
    merchant: MerchantIdentity,
    currency: str,
    amounts: OrderAmounts,
    items: Sequence[OrderItem],
    request: RequestOrigin,
    created_at: datetime,
    buyer: OrderBuyer | None = None,
    customer_account: str | None = None,
    charge_method_id: str | None = None,
    coupon_code: str | None = None,
    autocharge: bool | None = None,
    autocharge_explicit: bool | None = None,
    is_mobile: bool | None = None,
    subbrand: str | None = None,
    payment_url: str | None = None,
    sequence: str | None = None,
    reference: str | None = None,
    payment: OrderPayment | None = None,
) -> dict[str, Any]:
    """The order as consumers of the order-created event see it, with every key present.

    `customer_account` makes `customer` an object whose `address` is null until
    place_order sets it; `coupon_code` makes `coupon` an object with `amounts.coupon`.
    """
    if not items:
        raise ValueError("an order has at least one item")
    return {
        "id": order_id,
        "reference": reference,
        "family": family,
        "status": CREATED,
        "merchant": {"id": merchant.id, "code": merchant.code},
        "buyer": _buyer(buyer) if buyer is not None else None,
        "customer": (
            {"account": customer_account, "address": None} if customer_account is not None else None
        ),
        "chargeMethodId": charge_method_id,
        "items": [_item(item) for item in items],
        "currency": currency,
        "amounts": {
            "base": amounts.base,
            "discountPercent": amounts.discount_percent,
            "discount": amounts.discount,
            "coupon": amounts.coupon,
            "total": amounts.total,
        },
        "coupon": (
            {"code": coupon_code, "amount": amounts.coupon} if coupon_code is not None else None
        ),
        "autocharge": autocharge,
        "autochargeExplicit": autocharge_explicit,
        "isMobile": is_mobile,
        "subbrand": subbrand,
        "paymentUrl": payment_url,
        "sequence": sequence,
        "payment": _payment(payment) if payment is not None else None,
        "request": {
            "buyerIp": request.buyer_ip,
            "source": request.source,
            "id": request.source_id,
            "googleAnalyticsClientId": request.ga_client_id,
        },
        "createdAt": rfc3339_utc(created_at),
    }


def _item(item: OrderItem) -> dict[str, Any]:
    return {
        "position": item.position,
        "action": item.action,
        "productCode": item.product_code,
        "productName": item.product_name,
        "subscriptionId": item.subscription_id,
        "periodId": item.period_id,
        "unitAmount": item.unit_amount,
        "quantity": item.quantity,
        "amount": item.amount,
    }


def _buyer(buyer: OrderBuyer) -> dict[str, Any]:
    return {
        "id": buyer.id,
        "email": buyer.email,
        "firstName": buyer.first_name,
        "lastName": buyer.last_name,
        "country": buyer.country,
        "locale": buyer.locale,
    }


def _payment(payment: OrderPayment) -> dict[str, Any]:
    return {
        "method": payment.method,
        "periodId": payment.period_id,
        "startDate": rfc3339_utc(payment.start_date),
        "invoiceDeliveryMethod": payment.invoice_delivery_method,
        "receiptUrl": payment.receipt_url,
        "merchantReference": payment.merchant_reference,
        "trafficSource": payment.traffic_source,
        "language": payment.language,
        "userAgent": payment.user_agent,
    }
