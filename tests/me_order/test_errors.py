"""Every 400 of the document, with the exact body the Payway-style format gives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.me_order.conftest import (
    CARD_PERIOD,
    ME_ORDER_PATH,
    WEEKEND_PERIOD,
    Token,
    bearer,
    order_body,
)


async def post(client: Any, token: str, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(ME_ORDER_PATH, data=raw, headers={**bearer(token), **headers})


async def test_document_example_error_body(client: Any, token: Token) -> None:
    response = await post(client, token(), order_body(period_id="5cb8048"))
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": "period_id",
        "message": "Parameter must match format (/^[a-f\\d]{24}$/)",
    }
    assert response.content_type == "application/json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type(client: Any, token: Token, content_type: str) -> None:
    response = await post(client, token(), order_body(), **{"Content-Type": content_type})
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_content_type_error",
        "message": "Content-Type must be application/json",
    }


async def test_missing_content_type(client: Any, token: Token) -> None:
    response = await client.post(
        ME_ORDER_PATH,
        data=orjson.dumps(order_body()),
        headers={"Authorization": f"Bearer {token()}"},
        skip_auto_headers=["Content-Type"],
    )
    assert response.status == 400
    assert (await response.json())["code"] == "invalid_content_type_error"


async def test_charset_is_allowed(client: Any, token: Token) -> None:
    response = await post(
        client, token(), order_body(), **{"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b"[1, 2]", b'"text"', b"null"])
async def test_body_not_a_json_object(client: Any, token: Token, raw: bytes) -> None:
    response = await post(client, token(), raw)
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "json_parser_error"
    assert set(body) == {"code", "message"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"coupon": "WELCOME10"}, "coupon"),
        ({"address": {"street": "Ekvägen", "foo": 1}}, "address.foo"),
        # unknown fields come before every other problem
        ({"period_id": "bad", "extra": True}, "extra"),
    ],
)
async def test_unknown_parameter_names_the_field(
    client: Any, token: Token, changes: dict[str, Any], field: str
) -> None:
    response = await post(client, token(), order_body(**changes))
    assert response.status == 400
    assert await response.json() == {
        "code": "unknown_parameter",
        "field": field,
        "message": f"Unknown parameter {field}",
    }


COUNTRY_MESSAGE = "Parameter must be an ISO 3166-1 alpha-2 country code, e.g. SE"
REQUIRED = ["product_code", "period_id", "browser_ip", "language", "user_agent", "receipt_url"]


@pytest.mark.parametrize("field", REQUIRED)
async def test_required_field_missing(client: Any, token: Token, field: str) -> None:
    response = await post(client, token(), order_body(**{field: None}))
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": field,
        "message": "Parameter is required",
    }


INVALID = [
    ("product_code", "", "Parameter must be 1 to 100 characters"),
    ("product_code", 12, "Parameter must be a string"),
    ("period_id", "5CB804811D41C82B5C518EA8Z", "Parameter must match format (/^[a-f\\d]{24}$/)"),
    ("period_id", "5cb804811d41c82b5c518ea8\n", "Parameter must match format (/^[a-f\\d]{24}$/)"),
    (
        "start_date",
        "2019-05-01",
        "Parameter must be an RFC 3339 date-time, e.g. 2019-05-01T00:00:00+00:00",
    ),
    (
        "start_date",
        "2019-05-01T00:00:00+0200",
        "Parameter must be an RFC 3339 date-time, e.g. 2019-05-01T00:00:00+00:00",
    ),
    (
        "start_date",
        "2019-02-30T00:00:00Z",
        "Parameter must be an RFC 3339 date-time, e.g. 2019-05-01T00:00:00+00:00",
    ),
    ("browser_ip", "300.1.1.1", "Parameter must be an IP address (IPv4 or IPv6)"),
    ("browser_ip", "fe80::1%eth0", "Parameter must be an IP address (IPv4 or IPv6)"),
    ("language", "sv_SE", "Parameter must be a BCP 47 language tag, e.g. sv-SE"),
    ("language", "sv-SE,sv;q=0.9", "Parameter must be a BCP 47 language tag, e.g. sv-SE"),
    ("user_agent", "   ", "Parameter must not be empty"),
    ("user_agent", "x" * 1025, "Parameter must be at most 1024 characters"),
    ("receipt_url", "/receipt/1", "Parameter must be an absolute http or https URL"),
    ("receipt_url", "javascript:alert(1)", "Parameter must be an absolute http or https URL"),
    ("receipt_url", "https://", "Parameter must be an absolute http or https URL"),
    ("receipt_url", "https://x.tld:99999/", "Parameter must be an absolute http or https URL"),
    ("address", "Ekvägen 1", "Parameter must be an object"),
    ("address", {}, "Parameter must name at least one address field"),
    ("traffic_source", "x" * 129, "Parameter must be at most 128 characters"),
    ("merchant_reference", ["a"], "Parameter must be a string"),
    ("invoice_delivery_method", "fax", "Parameter must be one of: mail, email"),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
async def test_invalid_parameter(
    client: Any, token: Token, field: str, value: Any, message: str
) -> None:
    response = await post(client, token(), order_body(**{field: value}))
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": field,
        "message": message,
    }


@pytest.mark.parametrize(
    ("address", "field", "message"),
    [
        ({"country_code": "XX"}, "country_code", COUNTRY_MESSAGE),
        # A ligature that Unicode upper-cases to "ST" (São Tomé and Príncipe).
        ({"country_code": "\ufb05"}, "country_code", COUNTRY_MESSAGE),
        ({"street": 1}, "street", "Parameter must be a string"),
        ({"city": "x" * 101}, "city", "Parameter must be at most 100 characters"),
    ],
)
async def test_invalid_address_field(
    client: Any, token: Token, address: dict[str, Any], field: str, message: str
) -> None:
    response = await post(client, token(), order_body(address=address))
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": f"address.{field}",
        "message": message,
    }


async def test_first_problem_in_document_order(client: Any, token: Token) -> None:
    body = order_body(
        invoice_delivery_method="fax", receipt_url="nope", language="?", browser_ip="x"
    )
    response = await post(client, token(), body)
    assert (await response.json())["field"] == "browser_ip"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"product_code": "premium_1m"},  # a product of another merchant (eyezy)
            "product_code",
            "Parameter must be a product code of the merchant",
        ),
        (
            {"period_id": WEEKEND_PERIOD},  # a period of another product
            "period_id",
            "Parameter must be a period of the product",
        ),
        (
            {"period_id": "ffffffffffffffffffffffff"},
            "period_id",
            "Parameter must be a period of the product",
        ),
        (
            {"period_id": CARD_PERIOD},
            "period_id",
            "The period's payment method is card; this endpoint supports only the payment "
            "methods invoice and autogiro",
        ),
        (
            {"period_id": "5cb804811d41c82b5c518ea9", "invoice_delivery_method": "email"},
            "invoice_delivery_method",
            "Parameter applies only when the payment method is invoice",
        ),
    ],
)
async def test_catalog_rules(
    client: Any, token: Token, changes: dict[str, Any], field: str, message: str
) -> None:
    response = await post(client, token(), order_body(**changes))
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": field,
        "message": message,
    }


async def test_unknown_route_under_external_uses_the_payway_format(client: Any) -> None:
    response = await client.get("/external/api/v1/me/nothing")
    assert response.status == 404
    assert set(await response.json()) == {"code", "message"}


async def test_get_is_not_allowed(client: Any) -> None:
    response = await client.get(ME_ORDER_PATH)
    assert response.status == 405
    assert (await response.json())["code"] == "method_not_allowed"
