"""The oneclick order (POST /api/v3/buyers/{buyerId}/oneclick): a buyer's saved payment
method pays for purchases, upgrades, downgrades and renewals in one order.

Plain functions over the catalog snapshot: `resolve_oneclick_order` applies every rule
(and raises the API error that names what is wrong), `prepare_oneclick_order` turns the
result into the rows and event that one transaction writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from events.envelope import order_created_event
from events.order_data import OrderAmounts, OrderBuyer, OrderItem, order_event_data
from service.auth.merchant import MerchantRequest
from service.catalog import Buyer, ChargeMethod, Merchant, Product, Subscription
from service.domain.identifiers import UUID_TEXT, shown_id
from service.errors import NotFound, ProductNotFound, ValidationFailed
from service.handlers.common import merchant_order_columns, request_origin
from service.order_store import PreparedOrder, order_item_row, order_row
from service.records import record

FAMILY: Final = "oneclick"
PURCHASE, UPGRADE, DOWNGRADE, RENEW = "purchase", "upgrade", "downgrade", "renew"
ACTIONS = (PURCHASE, UPGRADE, DOWNGRADE, RENEW)
# The actions that act on an existing subscription (the document's rules 1 and 2).
SUBSCRIPTION_ACTIONS = (UPGRADE, DOWNGRADE, RENEW)
MAX_PRODUCTS = 20


@record
class OneclickItemRequest:
    """One entry of `products` as the schema loaded it."""

    action: str
    product_code: str | None
    subscription_id: UUID | None


@record
class OneclickRequest:
    """The request body as the schema loaded it (field combinations already checked)."""

    is_mobile: bool
    charge_method_id: str
    currency: str | None
    metadata: dict[str, Any] | None
    products: tuple[OneclickItemRequest, ...]


@record
class OneclickLine:
    """One product entry resolved against the catalog and priced."""

    position: int
    action: str
    product: Product
    subscription: Subscription | None
    unit_amount: int


@record
class OneclickOrder:
    merchant: Merchant
    buyer: Buyer
    charge_method: ChargeMethod
    currency: str
    is_mobile: bool
    autocharge: bool
    metadata: dict[str, Any] | None
    lines: tuple[OneclickLine, ...]

    @property
    def total_amount(self) -> int:
        # No discounts or coupons on this endpoint: the total is the sum of the prices.
        return sum(line.unit_amount for line in self.lines)


def item_path(position: int, field: str | None = None) -> str:
    """The path of a product entry (or one of its fields) as error `fields` name it."""
    return f"products[{position}]" + (f".{field}" if field else "")


def find_buyer(merchant: Merchant, raw_buyer_id: str) -> Buyer:
    """The merchant's buyer the path names. A malformed id, an unknown one and another
    merchant's buyer are the same 404, so nothing leaks across merchants."""
    buyer = merchant.buyers.get(UUID(raw_buyer_id)) if UUID_TEXT.fullmatch(raw_buyer_id) else None
    if buyer is None:
        shown = shown_id(raw_buyer_id)
        raise NotFound(
            f"Buyer {shown!r} not found",
            code="buyer_not_found",
            fields={"buyerId": [f"no buyer {shown!r} for this merchant"]},
        )
    return buyer


def usable_charge_method(buyer: Buyer, charge_method_id: str) -> ChargeMethod:
    """The buyer's own payment method, if it can be charged."""
    field = "chargeMethodId"
    method = buyer.charge_methods.get(charge_method_id)
    if method is None:
        raise NotFound(
            f"Charge method {charge_method_id!r} not found for buyer {buyer.id}",
            code="charge_method_not_found",
            fields={field: ["not a payment method of this buyer"]},
        )
    if method.status == "expired":
        raise ValidationFailed(
            f"Charge method {charge_method_id!r} has expired; ask the buyer for a new one",
            code="charge_method_expired",
            fields={field: ["payment method has expired"]},
        )
    if method.status != "active":
        raise ValidationFailed(
            f"Charge method {charge_method_id!r} is disabled",
            code="charge_method_disabled",
            fields={field: ["payment method is disabled"]},
        )
    return method


def precheck_autocharge(merchant: Merchant, is_mobile: bool) -> bool:
    """The merchant's precheck autocharge setting for the buyer's platform."""
    return (
        merchant.precheck_autocharge_mobile if is_mobile else merchant.precheck_autocharge_desktop
    )


def active_subscription(buyer: Buyer, subscription_id: UUID, position: int) -> Subscription:
    field = item_path(position, "subscriptionId")
    subscription = buyer.subscriptions.get(subscription_id)
    if subscription is None:
        raise NotFound(
            f"Subscription {subscription_id} not found for buyer {buyer.id}",
            code="subscription_not_found",
            fields={field: ["not a subscription of this buyer"]},
        )
    if subscription.status != "active":
        raise ValidationFailed(
            f"Subscription {subscription_id} is {subscription.status}, not active",
            code="subscription_not_active",
            fields={field: [f"subscription is {subscription.status}"]},
        )
    return subscription


def merchant_product(merchant: Merchant, code: str, field: str) -> Product:
    product = merchant.products.get(code)
    if product is None:
        raise ProductNotFound(field, code)
    return product


def check_tier_change(action: str, current: Product, target: Product, position: int) -> None:
    """An upgrade moves to a strictly higher tier, a downgrade to a strictly lower one,
    and both move to another subscription product (never to a one-time product)."""
    upgrading = action == UPGRADE
    code = "invalid_upgrade" if upgrading else "invalid_downgrade"
    field = item_path(position, "productCode")
    if target.kind != "subscription":
        raise ValidationFailed(
            f"{item_path(position)}: cannot {action} to {target.code!r}, which is not a "
            "subscription product",
            code=code,
            fields={field: [f"{action} target must be a subscription product"]},
        )
    moves_right_way = target.tier > current.tier if upgrading else target.tier < current.tier
    if not moves_right_way:
        direction = "higher" if upgrading else "lower"
        raise ValidationFailed(
            f"{item_path(position)}: {'an' if upgrading else 'a'} {action} must move to a "
            f"{direction} tier than the "
            f"subscription's product {current.code!r} (tier {current.tier}); "
            f"{target.code!r} is tier {target.tier}",
            code=code,
            fields={field: [f"tier {target.tier} is not {direction} than tier {current.tier}"]},
        )


def resolve_line(
    merchant: Merchant, buyer: Buyer, position: int, item: OneclickItemRequest
) -> tuple[Product, Subscription | None]:
    """The product an entry buys and the subscription it acts on."""
    code_field = item_path(position, "productCode")
    if item.action == PURCHASE:
        assert item.product_code is not None  # the schema requires it
        return merchant_product(merchant, item.product_code, code_field), None
    assert item.subscription_id is not None  # the schema requires it
    subscription = active_subscription(buyer, item.subscription_id, position)
    current = merchant_product(
        merchant, subscription.product_code, item_path(position, "subscriptionId")
    )
    if item.action == RENEW:
        if item.product_code is not None:
            named = merchant_product(merchant, item.product_code, code_field)
            if named.code != current.code:
                raise ValidationFailed(
                    f"A renewal keeps the subscription's product {current.code!r}, not "
                    f"{named.code!r}; another product is an upgrade or a downgrade",
                    code="renew_product_mismatch",
                    fields={
                        code_field: [f"renew keeps the subscription's product {current.code!r}"]
                    },
                )
        return current, subscription
    assert item.product_code is not None  # the schema requires it
    target = merchant_product(merchant, item.product_code, code_field)
    check_tier_change(item.action, current, target, position)
    return target, subscription


def price_lines(
    resolved: list[tuple[int, str, Product, Subscription | None]], currency: str
) -> tuple[OneclickLine, ...]:
    """Every line's price in `currency`; one 422 names every product that has none."""
    missing: dict[str, list[str]] = {}
    for position, action, product, _ in resolved:
        if currency not in product.prices:
            field = item_path(position, "subscriptionId" if action == RENEW else "productCode")
            missing[field] = [f"product {product.code!r} has no price in {currency}"]
    if missing:
        codes = sorted({p.code for pos, _, p, _ in resolved if currency not in p.prices})
        raise ValidationFailed(
            f"No price in {currency} for product(s): " + ", ".join(codes),
            code="price_not_available",
            fields=missing,
        )
    return tuple(
        OneclickLine(position, action, product, subscription, product.prices[currency])
        for position, action, product, subscription in resolved
    )


def resolve_oneclick_order(
    merchant: Merchant, buyer: Buyer, request: OneclickRequest
) -> OneclickOrder:
    """Applies the rules of the endpoint (after `find_buyer`) in the order a caller would
    fix them: the payment method, each entry's subscription and product, then the prices."""
    charge_method = usable_charge_method(buyer, request.charge_method_id)
    resolved = [
        (position, item.action, *resolve_line(merchant, buyer, position, item))
        for position, item in enumerate(request.products)
    ]
    currency = request.currency or merchant.default_currency
    return OneclickOrder(
        merchant=merchant,
        buyer=buyer,
        charge_method=charge_method,
        currency=currency,
        is_mobile=request.is_mobile,
        autocharge=precheck_autocharge(merchant, request.is_mobile),
        metadata=request.metadata,
        lines=price_lines(resolved, currency),
    )


def item_rows(order_id: str, order: OneclickOrder) -> list[dict[str, Any]]:
    return [
        order_item_row(
            order_id,
            line.position,
            action=line.action,
            product_id=line.product.id,
            product_code=line.product.code,
            unit_amount=line.unit_amount,
            subscription_id=str(line.subscription.id) if line.subscription else None,
        )
        for line in order.lines
    ]


def event_order(
    order_id: str, order: OneclickOrder, ctx: MerchantRequest, created_at: datetime
) -> dict[str, Any]:
    """The order as consumers of the order-created event see it."""
    return order_event_data(
        order_id=order_id,
        family=FAMILY,
        merchant=order.merchant,
        currency=order.currency,
        amounts=OrderAmounts.undiscounted(order.total_amount),
        items=[
            OrderItem(
                position=line.position,
                action=line.action,
                product_code=line.product.code,
                product_name=line.product.name,
                unit_amount=line.unit_amount,
                subscription_id=str(line.subscription.id) if line.subscription else None,
            )
            for line in order.lines
        ],
        request=request_origin(ctx),
        created_at=created_at,
        buyer=OrderBuyer(id=str(order.buyer.id), email=order.buyer.email),
        charge_method_id=order.charge_method.id,
        autocharge=order.autocharge,
        autocharge_explicit=False,
        is_mobile=order.is_mobile,
    )


def oneclick_response(order_id: str) -> dict[str, Any]:
    return {"data": {"id": order_id}, "meta": {"type": "entity"}}


def prepare_oneclick_order(
    order: OneclickOrder,
    order_id: str,
    ctx: MerchantRequest,
    created_at: datetime,
    event_source: str,
) -> PreparedOrder:
    """The order row, its items, its outbox event and the response, for one order id."""
    total = order.total_amount
    row = order_row(
        id=order_id,
        family=FAMILY,
        currency=order.currency,
        base_amount=total,
        total_amount=total,
        autocharge=order.autocharge,
        autocharge_explicit=False,
        is_mobile=order.is_mobile,
        buyer_id=str(order.buyer.id),
        buyer={"id": str(order.buyer.id), "email": order.buyer.email},
        charge_method_id=order.charge_method.id,
        metadata=order.metadata,
        **merchant_order_columns(ctx, created_at),
    )
    event = order_created_event(
        source=event_source,
        family=FAMILY,
        order_id=order_id,
        created_at=created_at,
        order=event_order(order_id, order, ctx, created_at),
        metadata=order.metadata,
    )
    return PreparedOrder(
        row=row,
        items=item_rows(order_id, order),
        event=event,
        response_status=200,
        response_body=oneclick_response(order_id),
    )
