"""End to end, one test per endpoint family: an order created over HTTP in the app
(whose relay runs in it and is woken by the order) reaches a consumer with the right data
and the exact metaData, and the event matches the AsyncAPI contract."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jsonschema
import jwt
import orjson
import pytest

from events.contract import component_schema
from service.auth.signing import compute_token, signed_headers
from service.config import Config
from tests.conftest import EYEZY_KEY
from tests.events.conftest import EventConsumer, Received
from tests.events.test_relay import METADATA

ANN = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"  # eyezy's buyer in the demo catalog
INVOICE_PERIOD = "5cb804811d41c82b5c518ea8"  # adeprimo_digital, invoice


@pytest.fixture
def config(base_config: Config) -> Config:
    # A poll slower than any test waits: the event goes out because the order woke the
    # relay running in the app.
    return replace(base_config, outbox_poll_interval=60)


def signed(path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A signed merchant request with an x-date to the microsecond (never a replay)."""
    raw = orjson.dumps(body)
    headers = signed_headers(EYEZY_KEY[0], EYEZY_KEY[1], "POST", path, raw)
    x_date = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    headers["x-date"] = x_date
    headers["x-token"] = compute_token(EYEZY_KEY[1], "POST", path, x_date, raw)
    headers["Content-Type"] = "application/json"
    return raw, headers


def with_marker(metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    marker = uuid.uuid4().hex
    return marker, {**metadata, "marker": marker}


def metadata_marker(marker: str) -> Any:
    def matches(received: Received) -> bool:
        meta = received.envelope.get("data", {}).get("metaData") or {}
        return bool(meta.get("marker") == marker)

    return matches


def assert_valid_event(received: Received, family: str, order_id: str) -> None:
    envelope = received.envelope
    jsonschema.Draft7Validator(
        component_schema("OrderCreatedEnvelope", strict=True),
        format_checker=jsonschema.FormatChecker(),
    ).validate(envelope)
    assert envelope["source"].endswith(f"/{family}")
    assert envelope["data"]["family"] == family
    assert envelope["subject"] == order_id
    assert envelope["data"]["order"]["id"] == order_id
    assert received.message_id == envelope["id"] == received.headers["ce-id"]


async def post_me_order(client: Any, config: Config, account: str, **fields: Any) -> dict[str, Any]:
    """A customer order of `account` (an invoice period), signed in with a fresh token;
    its answer."""
    now = int(time.time())
    assert config.jwt_secret is not None
    claims = {
        "sub": account,
        "org": "adeprimo",
        "scope": "openid /external/me/order/w",
        "iat": now,
        "exp": now + 300,
    }
    token = jwt.encode(claims, config.jwt_secret, "HS256")
    body = {
        "product_code": "adeprimo_digital",
        "period_id": INVOICE_PERIOD,
        "browser_ip": "127.0.0.1",
        "language": "sv-SE",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
        **fields,
    }
    response = await client.post(
        "/external/api/v1/me/order",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_initials_url_order_event(
    client: Any, consumer: EventConsumer, db: asyncpg.Connection
) -> None:
    marker, metadata = with_marker(METADATA)
    path = "/api/v2/initials/url"
    raw, headers = signed(path, {"product": {"code": "premium_1m"}, "metaData": metadata})
    response = await client.post(path, data=raw, headers=headers)
    assert response.status == 200, await response.text()

    received = await consumer.wait_for_match(metadata_marker(marker))
    order_id = await db.fetchval("SELECT id FROM orders WHERE metadata->>'marker' = $1", marker)
    assert_valid_event(received, "initials_url", order_id)
    assert received.envelope["data"]["metaData"] == metadata
    order = received.envelope["data"]["order"]
    assert order["merchant"]["code"] == "eyezy"
    assert order["items"][0]["productCode"] == "premium_1m"


async def test_oneclick_order_event(
    client: Any, consumer: EventConsumer, db: asyncpg.Connection
) -> None:
    marker, metadata = with_marker(METADATA)
    path = f"/api/v3/buyers/{ANN}/oneclick"
    body = {
        "isMobile": False,
        "chargeMethodId": "cm_ann_visa",
        "products": [{"action": "purchase", "productCode": "report_pdf"}],
        "metaData": metadata,
    }
    raw, headers = signed(path, body)
    response = await client.post(path, data=raw, headers=headers)
    assert response.status == 200, await response.text()

    received = await consumer.wait_for_match(metadata_marker(marker))
    order_id = await db.fetchval("SELECT id FROM orders WHERE metadata->>'marker' = $1", marker)
    assert_valid_event(received, "oneclick", order_id)
    assert received.envelope["data"]["metaData"] == metadata
    order = received.envelope["data"]["order"]
    assert order["items"][0]["productCode"] == "report_pdf"
    assert order["chargeMethodId"] == "cm_ann_visa"


async def test_me_order_event(
    client: Any, consumer: EventConsumer, db: asyncpg.Connection, config: Config
) -> None:
    account = f"customer-{uuid.uuid4().hex[:12]}"
    merchant_reference = f"ref-{uuid.uuid4().hex[:8]}"
    answer = await post_me_order(
        client,
        config,
        account,
        merchant_reference=merchant_reference,
        traffic_source="newsletter",
    )

    order_id = await db.fetchval("SELECT id FROM orders WHERE customer_account = $1", account)
    received = await consumer.wait_for_match(lambda r: r.envelope.get("subject") == order_id)
    assert_valid_event(received, "me_order", answer["id"])
    order_text = orjson.dumps(received.envelope["data"]["order"]).decode()
    assert merchant_reference in order_text
    assert INVOICE_PERIOD in order_text
    assert received.envelope["data"]["order"]["reference"] == answer["order_id"]


async def test_the_event_spells_the_buyer_ip_as_the_order_row_and_the_api_do(
    client: Any, consumer: EventConsumer, db: asyncpg.Connection, config: Config
) -> None:
    marker, metadata = with_marker(METADATA)
    path = "/api/v2/initials/url"
    raw, headers = signed(path, {"product": {"code": "premium_1m"}, "metaData": metadata})
    headers["x-buyer-ip"] = "::FFFF:192.0.2.1"
    response = await client.post(path, data=raw, headers=headers)
    assert response.status == 200, await response.text()
    received = await consumer.wait_for_match(metadata_marker(marker))
    order_id = received.envelope["subject"]
    stored = await db.fetchval("SELECT host(buyer_ip) FROM orders WHERE id = $1", order_id)
    assert stored == "::ffff:192.0.2.1"
    assert received.envelope["data"]["order"]["request"]["buyerIp"] == stored
    read_path = f"/api/v3/orders/{order_id}"
    read = await client.get(
        read_path, headers=signed_headers(EYEZY_KEY[0], EYEZY_KEY[1], "GET", read_path, b"")
    )
    assert (await read.json())["data"]["buyerIp"] == stored

    account = f"customer-{uuid.uuid4().hex[:12]}"
    order_id = (await post_me_order(client, config, account, browser_ip="2001:0DB8::0002"))["id"]
    received = await consumer.wait_for_match(lambda r: r.envelope.get("subject") == order_id)
    stored = await db.fetchval("SELECT host(buyer_ip) FROM orders WHERE id = $1", order_id)
    assert stored == "2001:db8::2"
    assert received.envelope["data"]["order"]["request"]["buyerIp"] == stored
