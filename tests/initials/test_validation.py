"""Every refusal of a bad initials/url request: the 4xx, its code and the field's path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.initials.conftest import PATH, Post

OK_PRODUCT = {"code": "premium_1m"}

# (case, body, field path named in the error)
INVALID_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("product missing", {}, "product"),
    ("product not an object", {"product": "premium_1m"}, "product"),
    ("product code missing", {"product": {}}, "product.code"),
    ("product code not a string", {"product": {"code": 5}}, "product.code"),
    ("product code empty", {"product": {"code": ""}}, "product.code"),
    ("currency not ISO 4217", {"product": {**OK_PRODUCT, "currency": "USS"}}, "product.currency"),
    ("currency lower case", {"product": {**OK_PRODUCT, "currency": "usd"}}, "product.currency"),
    ("unknown product field", {"product": {**OK_PRODUCT, "price": 1}}, "product.price"),
    ("unknown top-level field", {"product": OK_PRODUCT, "amount": 1}, "amount"),
    ("buyer not an object", {"product": OK_PRODUCT, "buyer": "ann"}, "buyer"),
    ("buyer without email", {"product": OK_PRODUCT, "buyer": {"id": "x"}}, "buyer.email"),
    ("buyer bad email", {"product": OK_PRODUCT, "buyer": {"email": "nope"}}, "buyer.email"),
    (
        "buyer country not ISO 3166",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "country": "XX"}},
        "buyer.country",
    ),
    (
        # Unicode upper-casing would make it "SS", South Sudan.
        "buyer country upper-cased by Unicode rules",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "country": "ß"}},
        "buyer.country",
    ),
    (
        "buyer country alpha-3",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "country": "DEU"}},
        "buyer.country",
    ),
    (
        "buyer locale",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "locale": "english!"}},
        "buyer.locale",
    ),
    (
        "buyer first name not a string",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "firstName": 1}},
        "buyer.firstName",
    ),
    (
        "buyer unknown field",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "phone": "1"}},
        "buyer.phone",
    ),
    ("metaData not an object", {"product": OK_PRODUCT, "metaData": ["a"]}, "metaData"),
    ("metaData nested", {"product": OK_PRODUCT, "metaData": {"a": {"b": 1}}}, "metaData.a"),
    (
        "metaData long key",
        {"product": OK_PRODUCT, "metaData": {"k" * 41: 1}},
        "metaData." + "k" * 41,
    ),
    ("metaData long value", {"product": OK_PRODUCT, "metaData": {"a": "v" * 501}}, "metaData.a"),
    (
        "metaData too many keys",
        {"product": OK_PRODUCT, "metaData": {f"k{i}": i for i in range(51)}},
        "metaData",
    ),
    (
        "autoChargeStatus string",
        {"product": OK_PRODUCT, "autoChargeStatus": "true"},
        "autoChargeStatus",
    ),
    ("autoChargeStatus number", {"product": OK_PRODUCT, "autoChargeStatus": 1}, "autoChargeStatus"),
    ("sequence number", {"product": OK_PRODUCT, "sequence": 123}, "sequence"),
    ("sequence too long", {"product": OK_PRODUCT, "sequence": "1" * 65}, "sequence"),
    ("discount string", {"product": OK_PRODUCT, "discount": "15"}, "discount"),
    ("discount float", {"product": OK_PRODUCT, "discount": 15.5}, "discount"),
    ("discount bool", {"product": OK_PRODUCT, "discount": True}, "discount"),
    ("discount negative", {"product": OK_PRODUCT, "discount": -1}, "discount"),
    ("discount over 100", {"product": OK_PRODUCT, "discount": 101}, "discount"),
    ("coupon number", {"product": OK_PRODUCT, "coupon": 123456}, "coupon"),
    ("subbrand with spaces", {"product": OK_PRODUCT, "subbrand": "eyezy app"}, "subbrand"),
    ("subbrand number", {"product": OK_PRODUCT, "subbrand": 7}, "subbrand"),
    # PostgreSQL text and jsonb cannot hold U+0000: refused, never a 500.
    ("NUL in sequence", {"product": OK_PRODUCT, "sequence": "a\x00"}, "sequence"),
    ("NUL in product code", {"product": {"code": "premium\x00"}}, "product.code"),
    (
        "NUL in buyer name",
        {"product": OK_PRODUCT, "buyer": {"email": "a@b.example", "firstName": "\x00"}},
        "buyer.firstName",
    ),
    ("NUL in metaData value", {"product": OK_PRODUCT, "metaData": {"a": "x\x00"}}, "metaData.a"),
    ("NUL in metaData key", {"product": OK_PRODUCT, "metaData": {"a\x00": 1}}, "metaData.a\x00"),
]


@pytest.mark.parametrize(
    ("body", "path"), [c[1:] for c in INVALID_FIELDS], ids=[c[0] for c in INVALID_FIELDS]
)
async def test_invalid_field_is_named(post_initials: Post, body: dict[str, Any], path: str) -> None:
    response = await post_initials(body)
    assert response.status == 422, await response.text()
    payload = await response.json()
    assert payload["error"]["code"] == "validation_error"
    assert path in payload["error"]["fields"], payload
    assert payload["meta"]["type"] == "error" and payload["meta"]["requestId"]


async def test_every_bad_field_is_listed(post_initials: Post) -> None:
    response = await post_initials(
        {"product": {"code": 1, "currency": "XYZ"}, "discount": 200, "sequence": 5, "extra": 1}
    )
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"product.code", "product.currency", "discount", "sequence", "extra"}


@pytest.mark.parametrize(
    ("subbrand", "alias"),
    [("eyezy-app.org", "eyezy_app_org"), ("moniterro.com", "moniterro_com")],
)
async def test_subbrand_with_dot_or_hyphen_tells_the_alias(
    post_initials: Post, subbrand: str, alias: str
) -> None:
    response = await post_initials({"product": OK_PRODUCT, "subbrand": subbrand})
    assert response.status == 422
    [message] = (await response.json())["error"]["fields"]["subbrand"]
    assert f'"{alias}"' in message


# (case, body, status, code, field)
RULE_REFUSALS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("unknown product", {"product": {"code": "nope"}}, 404, "product_not_found", "product.code"),
    (
        "no price in currency",
        {"product": {"code": "premium_1y", "currency": "JPY"}},
        422,
        "currency_not_available",
        "product.currency",
    ),
    (
        "unknown coupon",
        {"product": OK_PRODUCT, "coupon": "NOPE"},
        422,
        "coupon_not_found",
        "coupon",
    ),
    (
        "expired coupon",
        {"product": OK_PRODUCT, "coupon": "EXPIRED2020"},
        422,
        "coupon_expired",
        "coupon",
    ),
    (
        "future coupon",
        {"product": OK_PRODUCT, "coupon": "NOTYET"},
        422,
        "coupon_not_yet_valid",
        "coupon",
    ),
    (
        "inactive coupon",
        {"product": OK_PRODUCT, "coupon": "RETIRED"},
        422,
        "coupon_inactive",
        "coupon",
    ),
    (
        "exhausted coupon",
        {"product": OK_PRODUCT, "coupon": "SOLDOUT"},
        422,
        "coupon_exhausted",
        "coupon",
    ),
    (
        "unknown subbrand",
        {"product": OK_PRODUCT, "subbrand": "other_com"},
        422,
        "subbrand_not_found",
        "subbrand",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [c[1:] for c in RULE_REFUSALS],
    ids=[c[0] for c in RULE_REFUSALS],
)
async def test_rule_refusals(
    post_initials: Post, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    response = await post_initials(body)
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], list(error["fields"])) == (code, [field])
    if code == "product_not_found":
        assert error["message"] == "Product not found by merchant and code"


# (case, header overrides, header named)
BAD_HEADERS: list[tuple[str, dict[str, Any], str]] = [
    ("no GA client id", {"ga_client_id": None}, "x-google-analytics-client-id"),
    ("buyer ip not an address", {"buyer_ip": "999.1.1.1"}, "x-buyer-ip"),
    ("buyer ip with a zone", {"buyer_ip": "fe80::1%eth0"}, "x-buyer-ip"),
    ("empty x-source", {"source": " "}, "x-source"),
    ("empty x-id", {"source_id": ""}, "x-id"),
]


@pytest.mark.parametrize(
    ("overrides", "header"), [c[1:] for c in BAD_HEADERS], ids=[c[0] for c in BAD_HEADERS]
)
async def test_bad_headers_are_named(
    post_initials: Post, overrides: dict[str, Any], header: str
) -> None:
    response = await post_initials({"product": OK_PRODUCT}, **overrides)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid_headers"
    assert f"headers.{header}" in error["fields"]


async def test_ipv6_buyer_ip_is_accepted(post_initials: Post) -> None:
    response = await post_initials({"product": OK_PRODUCT}, buyer_ip="2001:db8::1")
    assert response.status == 200


async def test_body_that_is_not_json(client: Any, sign: Any) -> None:
    raw, headers = sign(PATH, b"{not json")
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "json_parser_error"

    raw, headers = sign(PATH, b"[1, 2]")
    response = await client.post(PATH, data=raw, headers=headers)
    assert (await response.json())["error"]["code"] == "json_parser_error"

    raw, headers = sign(PATH, b'{"product": {"code": "premium_1m"}}')
    headers["Content-Type"] = "text/plain"
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_content_type_error"


async def test_body_over_64_kib(client: Any, sign: Any) -> None:
    raw, headers = sign(PATH, b'{"pad": "' + b"x" * 70_000 + b'"}')
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
