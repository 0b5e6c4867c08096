"""Plain unit tests of the schema and the domain rules (no server, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.me_order import load_me_order_request
from service.catalog import Merchant, Period, Product
from service.domain.me_order import check_me_order, period_price, prepare_me_order
from service.errors import BadRequest
from tests.me_order.conftest import ADDRESS, INVOICE_PERIOD, order_body

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def merchant(prices: dict[str, int] | None = None) -> Merchant:
    period = Period(INVOICE_PERIOD, "digital", "P1M", prices or {"SEK": 9900}, "invoice")
    product = Product(7, "digital", "Digital", "subscription", "P1M", 1, {"SEK": 9900})
    product.periods[period.id] = period
    return Merchant(
        id=3,
        code="adeprimo",
        name="Adeprimo",
        default_currency="SEK",
        order_prefix="ADEPRIMO",
        precheck_autocharge_desktop=True,
        precheck_autocharge_mobile=True,
        payment_page_url="https://{host}/{order_id}",
        default_host="pay.example",
        products={"digital": product},
    )


@pytest.mark.parametrize(
    "tag", ["sv-SE", "sv", "en-US", "zh-Hant-TW", "de-CH-1996", "es-419", "en-US-x-twain"]
)
def test_language_tags_accepted(tag: str) -> None:
    assert load_me_order_request(order_body(language=tag))["language"] == tag


@pytest.mark.parametrize(
    "value", ["2019-05-01T00:00:00Z", "2019-05-01t00:00:00.123456789z", "2019-05-01T02:00:00+02:00"]
)
def test_start_dates_accepted(value: str) -> None:
    start = load_me_order_request(order_body(start_date=value))["start_date"]
    assert start.tzinfo is UTC
    assert start.replace(microsecond=0) == datetime(2019, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("ip", ["127.0.0.1", "2001:db8::1", "::ffff:192.0.2.1"])
def test_ip_addresses_accepted(ip: str) -> None:
    assert load_me_order_request(order_body(browser_ip=ip))["browser_ip"] == ip


def test_loaded_address_is_normalised() -> None:
    loaded = load_me_order_request(
        order_body(address={**ADDRESS, "country_code": "se", "floor": None})
    )
    assert loaded["address"] == {
        **{k: v for k, v in ADDRESS.items() if k != "floor"},
        "country_code": "SE",
    }


def test_price_in_the_default_currency_else_the_first() -> None:
    m = merchant({"EUR": 900, "SEK": 9900})
    period = m.products["digital"].periods[INVOICE_PERIOD]
    assert period_price(m, period) == ("SEK", 9900)
    m = merchant({"NOK": 9500, "EUR": 900})
    period = m.products["digital"].periods[INVOICE_PERIOD]
    assert period_price(m, period) == ("EUR", 900)


def test_unknown_product_is_an_invalid_product_code() -> None:
    loaded = load_me_order_request(order_body())
    with pytest.raises(BadRequest) as caught:
        check_me_order(merchant(), "c", loaded, now=NOW)
    assert (caught.value.code, caught.value.field) == ("invalid_parameter", "product_code")


def test_prepared_order_leaves_reference_and_address_to_the_database() -> None:
    loaded: dict[str, Any] = load_me_order_request(order_body(product_code="digital"))
    order = check_me_order(merchant(), "customer-1", loaded, now=NOW)
    prepared = prepare_me_order(order, "0123456789abcdef01234567", event_source="/test")
    assert prepared.response_body == {"id": "0123456789abcdef01234567", "order_id": None}
    assert "address" not in prepared.row["details"]
    event_order = prepared.event["payload"]["data"]["order"]
    assert event_order["reference"] is None
    assert event_order["customer"] == {"account": "customer-1", "address": None}
    assert prepared.row["created_at"] == NOW.isoformat()
    assert prepared.items[0]["quantity"] == 1
