"""The OpenAPI document: valid OpenAPI 3.1, one operation for every route the app serves
(and none it does not), served as built at start-up; and the offline docs page."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from marshmallow import ValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from schemas.me_order import AddressSchema, load_me_order_request
from schemas.oneclick import OneclickProductSchema
from service.docs_assets import SWAGGER_UI_DIR
from service.errors import BadRequest
from service.openapi import build_openapi, served_operations
from service.openapi.operations import ME_ORDER_REQUEST_EXAMPLES, OPERATIONS

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
ME_ORDER_EXAMPLE = ME_ORDER_REQUEST_EXAMPLES["document"]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def test_document_is_valid_openapi_31(client: Any) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


async def test_every_route_is_documented_and_every_operation_served(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    served = served_operations(client.app.router)
    assert served == documented_operations(document)
    # The three creates, the read, the probes and the contract documents at least.
    for method, path in [
        ("post", "/api/v2/initials/url"),
        ("post", "/api/v3/buyers/{buyerId}/oneclick"),
        ("get", "/api/v3/orders/{orderId}"),
        ("post", "/external/api/v1/me/order"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    ]:
        assert (method, path) in served


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ({}, False),
        ({"city": None, "zip_code": None}, False),
        ({"city": "Lund"}, True),
        ({"city": "Lund", "zip_code": None}, True),
        ({"city": 7}, False),
    ],
)
def test_the_address_schema_refuses_what_the_service_refuses(
    address: dict[str, Any], valid: bool
) -> None:
    documented = Draft202012Validator(build_openapi()["components"]["schemas"]["Address"])
    assert documented.is_valid(address) is valid
    try:
        AddressSchema().load(address)
    except ValidationError:
        assert not valid
    else:
        assert valid


SUBSCRIPTION = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"


@pytest.mark.parametrize(
    ("product", "valid"),
    [
        ({"action": "purchase", "productCode": "report_pdf"}, True),
        ({"action": "purchase"}, False),
        ({"action": "purchase", "productCode": "x", "subscriptionId": SUBSCRIPTION}, False),
        ({"action": "upgrade", "productCode": "x", "subscriptionId": SUBSCRIPTION}, True),
        ({"action": "upgrade", "productCode": "x"}, False),
        ({"action": "downgrade", "subscriptionId": SUBSCRIPTION}, False),
        ({"action": "downgrade", "productCode": "x", "subscriptionId": SUBSCRIPTION}, True),
        ({"action": "renew", "subscriptionId": SUBSCRIPTION}, True),
        ({"action": "renew", "productCode": "x", "subscriptionId": SUBSCRIPTION}, True),
        ({"action": "renew"}, False),
        ({"action": "renew", "productCode": "x"}, False),
        ({"action": "cancel", "productCode": "x"}, False),
        # null is absent: refused fields may be null, required ones may not.
        ({"action": "purchase", "productCode": "x", "subscriptionId": None}, True),
        ({"action": "purchase", "productCode": None}, False),
        ({"action": "upgrade", "productCode": None, "subscriptionId": SUBSCRIPTION}, False),
        ({"action": "upgrade", "productCode": "x", "subscriptionId": None}, False),
        ({"action": "renew", "productCode": None, "subscriptionId": SUBSCRIPTION}, True),
        ({"action": "renew", "subscriptionId": None}, False),
    ],
)
def test_the_oneclick_product_schema_takes_per_action_what_the_service_takes(
    product: dict[str, Any], valid: bool
) -> None:
    schema = build_openapi()["components"]["schemas"]["OneclickProduct"]
    assert Draft202012Validator(schema).is_valid(product) is valid
    try:
        OneclickProductSchema().load(product)
    except ValidationError:
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("start_date", "2019-05-01T00:00:00+00:00", True),
        ("start_date", "2019-05-01T00:00:00", True),  # no offset: UTC
        ("start_date", "2019-05-01t00:00:00.123z", True),
        ("start_date", "2019-05-01", False),
        ("start_date", "2019-05-01 00:00:00", False),
        ("language", "sv-SE", True),
        ("language", "SV-se", True),
        ("language", "zh-Hant-TW", True),
        ("language", "en-x-private", True),
        ("language", "EN-X-PRIVATE", True),
        ("language", "x-private", True),
        ("language", "i-klingon", True),
        ("language", "i-", False),
        ("language", "!!", False),
        ("language", "", False),
        ("language", "sv_SE", False),
        ("user_agent", "Mozilla/5.0", True),
        ("user_agent", "", False),
        ("user_agent", "   ", False),
        ("receipt_url", "https://domain.tld/receipt/1", True),
        ("receipt_url", "HTTP://domain.tld/", True),
        ("receipt_url", "ftp://domain.tld/receipt/1", False),
    ],
)
def test_me_order_fields_are_documented_as_the_service_checks_them(
    field: str, value: str, valid: bool
) -> None:
    document = build_openapi()
    property_schema = document["components"]["schemas"]["MeOrderRequest"]["properties"][field]
    documented = Draft202012Validator(property_schema, format_checker=FORMAT_CHECKER)
    assert documented.is_valid(value) is valid
    body = {**ME_ORDER_EXAMPLE, field: value}
    try:
        load_me_order_request(body)
    except BadRequest as refused:
        assert refused.code == "invalid_parameter"
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v2/initials/url", 405),
        ("delete", "/external/api/v1/me/order", 405),
        ("post", "/api/v3/buyers/{buyerId}/oneclick/", 404),
    ],
)
async def test_other_errors_match_the_default_response_of_the_operation(
    client: Any, method: str, path: str, status: int
) -> None:
    document = build_openapi()
    operation_path = path.rstrip("/")
    [operation] = [
        item for name, item in document["paths"][operation_path].items() if name == "post"
    ]
    default = operation["responses"]["default"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**default, "components": document["components"]})
    concrete = path.replace("{buyerId}", "6c3e3f7e-2d0a-4a5b-9d1e-0f1e2d3c4b5a")
    response = await client.request(method.upper(), concrete)
    assert response.status == status
    validator.validate(await response.json())


def test_operation_table_has_no_duplicates() -> None:
    keys = [(op.method, op.path) for op in OPERATIONS]
    assert len(keys) == len(set(keys))


async def test_document_is_built_once_at_start_up(client: Any) -> None:
    first = await client.get("/openapi.json")
    second = await client.get("/openapi.json")
    assert await first.read() == await second.read()
    assert await first.read() == orjson.dumps(build_openapi(served_operations(client.app.router)))


async def test_security_schemes_and_headers_are_declared(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert {schemes[n]["name"] for n in ("merchantPublicKey", "merchantDate", "merchantToken")} == {
        "x-public-key",
        "x-date",
        "x-token",
    }
    assert schemes["customerBearer"] == {**schemes["customerBearer"], "scheme": "bearer"}
    me_order = document["paths"]["/external/api/v1/me/order"]["post"]
    assert me_order["security"] == [{"customerBearer": ["/external/me/order/w"]}]
    headers = {p["name"] for p in document["components"]["parameters"].values()}
    assert headers >= {
        "x-buyer-ip",
        "x-source",
        "x-id",
        "x-google-analytics-client-id",
        "Idempotency-Key",
        "X-Request-ID",
    }
    for path in ("/api/v2/initials/url", "/api/v3/buyers/{buyerId}/oneclick"):
        operation = document["paths"][path]["post"]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"]
        # A signed request sent twice is refused: the document must say so.
        assert "409" in operation["responses"]
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/MerchantError"}
    payway_error = me_order["responses"]["400"]["content"]["application/json"]
    assert payway_error["schema"] == {"$ref": "#/components/schemas/PaywayError"}
    # The source document's own error example.
    assert payway_error["example"]["field"] == "period_id"


async def test_docs_page_works_offline(client: Any) -> None:
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    # Nothing is loaded from another host: every src/href is relative to the service.
    references = re.findall(r'(?:src|href|url)\s*[:=]\s*"([^"]+)"', page)
    assert references
    assert all("//" not in reference for reference in references), references
    for reference in references:
        if reference.startswith("docs/assets/"):
            asset = await client.get("/" + reference)
            assert asset.status == 200, reference
            assert len(await asset.read()) > 0


def test_docs_bundle_can_render_openapi_31() -> None:
    # Swagger UI 4 (swagger-ui-bundle 1.x) shows "Unable to render this definition" for 3.1.
    major = int(SWAGGER_UI_DIR.name.removeprefix("swagger-ui-").split(".")[0])
    assert major >= 5, SWAGGER_UI_DIR


async def test_docs_assets_serve_only_the_pages_files(client: Any) -> None:
    asset = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.content_type == "text/javascript"
    for name in ("no-such-file.js", "index.html", "..%2F__init__.py", "swagger-ui.js.map"):
        missing = await client.get(f"/docs/assets/{name}")
        assert missing.status == 404, name
        assert (await missing.json())["error"]["code"] == "route_not_found"


def test_every_order_operation_documents_the_answers_of_reading_its_body() -> None:
    # Each of them reads its body through read_body, which answers 415 for a coding it
    # cannot decode and 400 for a body it cannot decode or read as sent
    # (tests/contract/test_hostile_input.py).
    paths = build_openapi()["paths"]
    for path, method in [
        ("/api/v2/initials/url", "post"),
        ("/api/v3/buyers/{buyerId}/oneclick", "post"),
        ("/api/v3/orders/{orderId}", "get"),
        ("/external/api/v1/me/order", "post"),
    ]:
        responses = paths[path][method]["responses"]
        assert "unsupported_content_encoding" in responses["415"]["description"], path
        for code in ("invalid_content_encoding", "bad_request"):
            assert code in responses["400"]["description"], (path, code)


def test_error_examples_name_fields_of_their_own_operation() -> None:
    # A merchant reads `fields` of an example as paths into the request it sends.
    document = build_openapi()
    schemas = document["components"]["schemas"]
    for path, method in [
        ("/api/v2/initials/url", "post"),
        ("/api/v3/buyers/{buyerId}/oneclick", "post"),
    ]:
        operation = document["paths"][path][method]
        body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        top_level = set(schemas[body_ref.rsplit("/", 1)[1]]["properties"])
        for status, response in operation["responses"].items():
            for content in response.get("content", {}).values():
                fields = content.get("example", {}).get("error", {}).get("fields", {})
                for name in fields:
                    head = re.split(r"[.\[]", name, maxsplit=1)[0]
                    assert head in top_level | {"headers"}, (path, status, name)
