"""`data.order` has ONE shape: an order created through each of the three endpoint
families reaches a consumer with exactly the same keys (at every level where both sides
hold an object), and each validates against components/schemas/Order of the AsyncAPI
document, which allows nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import orjson
import pytest

from events.contract import component_schema
from events.order_data import (
    OrderAmounts,
    OrderBuyer,
    OrderItem,
    OrderPayment,
    RequestOrigin,
    isoformat_of,
    order_event_data,
    rfc3339_utc,
)
from service.config import Config
from tests.events.conftest import EventConsumer, MerchantRef, Received
from tests.events.test_endpoints import ANN, metadata_marker, post_me_order, signed
from tests.me_order.conftest import ADDRESS

ANN_PREMIUM_SUB = "0d6a8f7e-2b1c-4c55-8e0f-6b3a9d2e1f44"  # premium_1m, tier 2
CREATED_AT = datetime(2026, 11, 23, 13, 0, 0, 123456, tzinfo=UTC)


def validator(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        component_schema(name, strict=True), format_checker=jsonschema.FormatChecker()
    )


def assert_same_keys(left: Any, right: Any, path: str = "order") -> None:
    """Equal key sets wherever both sides hold an object (a null stands for any object)."""
    if isinstance(left, dict) and isinstance(right, dict):
        assert list(left) == list(right), f"{path}: {sorted(set(left) ^ set(right))}"
        for key in left:
            assert_same_keys(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list) and left and right:
        assert_same_keys(left[0], right[0], f"{path}[0]")


async def initials_order(client: Any, consumer: EventConsumer) -> dict[str, Any]:
    marker = uuid.uuid4().hex
    path = "/api/v2/initials/url"
    body = {
        "product": {"code": "premium_1m", "currency": "EUR"},
        "buyer": {"email": "dora@example.com", "id": "crm-4711", "country": "de"},
        "coupon": "WELCOME10",
        "discount": 15,
        "subbrand": "eyezy_app_com",
        "sequence": marker,
        "metaData": {"marker": marker},
    }
    raw, headers = signed(path, body)
    response = await client.post(path, data=raw, headers=headers)
    assert response.status == 200, await response.text()
    return (await consumer.wait_for_match(metadata_marker(marker))).envelope


async def oneclick_order(client: Any, consumer: EventConsumer) -> dict[str, Any]:
    marker = uuid.uuid4().hex
    path = f"/api/v3/buyers/{ANN}/oneclick"
    body = {
        "isMobile": True,
        "chargeMethodId": "cm_ann_visa",
        "products": [
            {"action": "purchase", "productCode": "report_pdf"},
            {"action": "upgrade", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "ultimate_1m"},
        ],
        "metaData": {"marker": marker},
    }
    raw, headers = signed(path, body)
    response = await client.post(path, data=raw, headers=headers)
    assert response.status == 200, await response.text()
    return (await consumer.wait_for_match(metadata_marker(marker))).envelope


async def me_order(client: Any, consumer: EventConsumer, config: Config) -> dict[str, Any]:
    account = f"customer-{uuid.uuid4().hex[:12]}"
    answer = await post_me_order(
        client,
        config,
        account,
        browser_ip="2001:db8::7",
        address=ADDRESS,
        invoice_delivery_method="email",
    )
    order_id = answer["id"]

    def is_it(received: Received) -> bool:
        return bool(received.envelope.get("subject") == order_id)

    return (await consumer.wait_for_match(is_it)).envelope


async def test_every_family_sends_the_same_order_shape(
    client: Any, consumer: EventConsumer, config: Config
) -> None:
    envelopes = {
        "initials_url": await initials_order(client, consumer),
        "oneclick": await oneclick_order(client, consumer),
        "me_order": await me_order(client, consumer, config),
    }
    envelope_validator, order_validator = validator("OrderCreatedEnvelope"), validator("Order")
    for family, envelope in envelopes.items():
        envelope_validator.validate(envelope)
        order_validator.validate(envelope["data"]["order"])
        assert envelope["data"]["order"]["family"] == family

    orders = {family: envelope["data"]["order"] for family, envelope in envelopes.items()}
    first = orders["initials_url"]
    for family, order in orders.items():
        assert list(order) == list(first), family
        assert_same_keys(first, order, f"{family}.order")

    # Each family's own parts are filled, so the comparison above saw those objects.
    assert orders["initials_url"]["buyer"]["country"] == "DE"
    assert orders["initials_url"]["coupon"]["code"] == "WELCOME10"
    assert orders["oneclick"]["items"][1]["subscriptionId"] == ANN_PREMIUM_SUB
    assert orders["oneclick"]["isMobile"] is True
    me = orders["me_order"]
    assert me["reference"] and me["reference"].startswith("ADEPRIMO-")
    assert me["customer"]["address"] == ADDRESS
    assert me["payment"]["invoiceDeliveryMethod"] == "email"
    assert me["request"]["buyerIp"] == "2001:db8::7"


@pytest.mark.parametrize("filled", [False, True], ids=["minimal", "every-part"])
def test_the_builder_always_gives_every_key(filled: bool) -> None:
    """With no optional part or with all of them: the same keys, valid against the schema."""
    optional: dict[str, Any] = {}
    if filled:
        optional = {
            "buyer": OrderBuyer("b@example.com", "b-1", "B", "C", "SE", "sv-SE"),
            "customer_account": "customer-1",
            "charge_method_id": "cm_1",
            "coupon_code": "WELCOME10",
            "autocharge": True,
            "autocharge_explicit": True,
            "is_mobile": False,
            "subbrand": "eyezy_app_com",
            "payment_url": "https://pay.example/Ab3dE7gH",
            "sequence": "42",
            "reference": "EYEZY-1001",
            "payment": OrderPayment(
                "invoice", "5cb804811d41c82b5c518ea8", CREATED_AT, "https://r.example/", "sv", "UA"
            ),
        }
    order = order_event_data(
        order_id="Ab3dE7gH",
        family="initials_url",
        merchant=MerchantRef(1, "eyezy"),
        currency="USD",
        amounts=OrderAmounts(base=1000, total=810, discount_percent=10, discount=100, coupon=90),
        items=[OrderItem(0, "purchase", "basic_1m", "Basic, monthly", 1000)],
        request=RequestOrigin("203.0.113.10"),
        created_at=CREATED_AT,
        **optional,
    )
    validator("Order").validate(orjson.loads(orjson.dumps(order)))
    assert list(order) == [
        "id", "reference", "family", "status", "merchant", "buyer", "customer",
        "chargeMethodId", "items", "currency", "amounts", "coupon", "autocharge",
        "autochargeExplicit", "isMobile", "subbrand", "paymentUrl", "sequence", "payment",
        "request", "createdAt",
    ]  # fmt: skip
    assert order["createdAt"] == "2026-11-23T13:00:00.123456Z"
    assert all(order[key] is not None for key in order) is filled


def test_the_schema_refuses_an_unknown_or_missing_order_key() -> None:
    order = order_event_data(
        order_id="Ab3dE7gH",
        family="oneclick",
        merchant=MerchantRef(1, "eyezy"),
        currency="USD",
        amounts=OrderAmounts.undiscounted(500),
        items=[OrderItem(0, "purchase", "report_pdf", "PDF report", 500)],
        request=RequestOrigin("203.0.113.10"),
        created_at=CREATED_AT,
    )
    with pytest.raises(jsonschema.ValidationError):
        validator("Order").validate({**order, "baseAmount": 500})
    with pytest.raises(jsonschema.ValidationError):
        validator("Order").validate({k: v for k, v in order.items() if k != "payment"})
    with pytest.raises(jsonschema.ValidationError):
        validator("Order").validate({**order, "items": [{**order["items"][0], "kind": "x"}]})


def test_a_moment_formatted_once_gives_each_datetime_its_own_text() -> None:
    # isoformat_of keeps the last text by the datetime's identity: an equal moment in
    # another zone, or a copy of it, is formatted anew, never given the last one's text.
    plus_one = timezone(timedelta(hours=1))
    moments = [CREATED_AT, CREATED_AT, CREATED_AT.astimezone(plus_one), CREATED_AT]
    moments += [CREATED_AT.replace(microsecond=0), datetime(2026, 11, 23, 13, tzinfo=UTC)]
    for moment in [*moments, *reversed(moments)]:
        assert isoformat_of(moment) == moment.isoformat()
        assert rfc3339_utc(moment) == moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
