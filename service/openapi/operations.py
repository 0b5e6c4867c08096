"""Every operation the service serves, as OpenAPI operation objects whose bodies are the
marshmallow schemas of schemas/ (the plugin turns them into JSON Schema). Examples are
the ones of the source documents (../shared/api-docs/), plus ones that work against the
demo catalog (examples/demo-catalog.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.health import HealthLiveSchema, HealthReadySchema
from schemas.initials import InitialsUrlRequestSchema, InitialsUrlResponseSchema
from schemas.me_order import MeOrderRequestSchema, MeOrderResponseSchema
from schemas.oneclick import OneclickRequestSchema, OneclickResponseSchema
from schemas.orders import OrderResponseSchema
from service.docs_assets import ASSETS, SWAGGER_UI_DIR
from service.errors import PRODUCT_NOT_FOUND
from service.openapi.components import (
    CUSTOMER_SECURITY,
    JSON,
    MERCHANT_SECURITY,
    merchant_error,
    merchant_errors,
    param,
    payway_errors,
    ref,
    request_id_header,
)
from service.pipeline import REPLAYED_HEADER

MERCHANT_TAG = "Merchant orders"
CUSTOMER_TAG = "Customer orders (Payway-style)"
OPERATIONS_TAG = "Operations"
CONTRACT_TAG = "API contract"

TAGS = [
    {"name": MERCHANT_TAG, "description": "Signed requests of merchant back ends."},
    {"name": CUSTOMER_TAG, "description": "Bearer requests of signed-in customers."},
    {"name": OPERATIONS_TAG, "description": "Probes and metrics."},
    {"name": CONTRACT_TAG, "description": "This document, the event contract, the docs page."},
]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # lower case, as OpenAPI writes it
    path: str  # an OpenAPI path template, e.g. /api/v3/orders/{orderId}
    spec: dict[str, Any] = field(hash=False)


def _ok(
    description: str, schema: Any, example: Any = None, *, replayable: bool = False
) -> dict[str, Any]:
    headers = request_id_header()
    if replayable:
        headers[REPLAYED_HEADER] = ref("headers", "IdempotentReplayed")
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "headers": headers, "content": {JSON: media}}


def _body(schema: Any, examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            JSON: {
                "schema": schema,
                "examples": {name: {"value": value} for name, value in examples.items()},
            }
        },
    }


# --- POST /api/v2/initials/url (initials-url-order-v2.txt) ---------------------------------

INITIALS_ERRORS = {
    404: "Not found for this merchant: `product_not_found` (message `Product not found by "
    "merchant and code`).",
    422: "Invalid headers (`invalid_headers`) or fields (`validation_error`, every bad field "
    "by its path); `buyer_required` (`x-source: shop` without a buyer); "
    "`currency_not_available` (no price in `product.currency`); `subbrand_not_found`; "
    "`coupon_not_found`, `coupon_inactive`, `coupon_not_yet_valid`, `coupon_expired`, "
    "`coupon_exhausted`, `coupon_currency_not_supported`; `idempotency_key_reused`.",
}

INITIALS_RESPONSE_EXAMPLE = {  # the document's response, as written
    "data": {
        "url": "https://st-pay-front-eyezy-app-com.dmr308.co/initial-billing/jw1fe2Mz",
        "params": {
            "metaData": {"foo": "bar"},
            "sequence": "123456123456123456",
            "discount": 15,
            "coupon": "123456",
            "googleAnalyticsClientId": "GA1.3.1034945594.1649316099",
        },
    },
    "meta": [],
}
INITIALS_REQUEST_EXAMPLES = {
    # First, since Swagger UI's "Try it out" starts from the first example.
    "demoCatalog": {
        "product": {"code": "premium_1m", "currency": "USD"},
        "buyer": {"email": "ann@example.com", "firstName": "Ann", "country": "US"},
        "metaData": {"foo": "bar"},
        "autoChargeStatus": None,
        "sequence": "123456123456123456",
        "discount": 15,
        "coupon": "WELCOME10",
        "subbrand": "eyezy_app_com",
    },
    # The request behind the document's response (its coupon is not in the demo catalog).
    "document": {
        "product": {"code": "premium_1m"},
        "metaData": {"foo": "bar"},
        "sequence": "123456123456123456",
        "discount": 15,
        "coupon": "123456",
        "subbrand": "eyezy_app_com",
    },
}

INITIALS = Operation(
    "post",
    "/api/v2/initials/url",
    {
        "operationId": "createInitialsUrlOrder",
        "tags": [MERCHANT_TAG],
        "summary": "Create an order and get its payment-page URL",
        "description": "Creates an order for one product. The price: the discount first, "
        "then the coupon on the discounted price (on the original price without a "
        "discount), half-up to the currency's minor unit. The response's `url` is the "
        "payment page of the order (`.../initial-billing/<order id>`).",
        "security": MERCHANT_SECURITY,
        "parameters": [
            param("XBuyerIp"),
            param("XSource"),
            param("XId"),
            param("XGoogleAnalyticsClientId"),
            param("IdempotencyKey"),
            param("XRequestId"),
        ],
        "requestBody": _body(InitialsUrlRequestSchema, INITIALS_REQUEST_EXAMPLES),
        "responses": {
            "200": _ok(
                "The order was created.",
                InitialsUrlResponseSchema,
                INITIALS_RESPONSE_EXAMPLE,
                replayable=True,
            ),
            **merchant_errors(
                400, 401, 404, 408, 409, 413, 415, 422, 503, described=INITIALS_ERRORS
            ),
        },
    },
)

# --- POST /api/v3/buyers/{buyerId}/oneclick (oneclick-order-v3.txt) -----------------------

ONECLICK_ERRORS = {
    404: "Not found for this merchant: `buyer_not_found` (the path's buyer), "
    "`charge_method_not_found`, `subscription_not_found`, `product_not_found`.",
    422: "Invalid headers (`invalid_headers`) or fields (`validation_error`, every bad field "
    "by its path, including a field the product's `action` does not take); "
    "`charge_method_expired`, `charge_method_disabled`, `subscription_not_active`, "
    "`invalid_upgrade`, `invalid_downgrade`, `renew_product_mismatch`, "
    "`price_not_available`; `idempotency_key_reused`.",
}

# Field paths as oneclick names them (products[n].productCode, not product.code).
ONECLICK_EXAMPLES = {
    404: (
        "product_not_found",
        PRODUCT_NOT_FOUND,
        {"products[0].productCode": ["unknown product 'premium_2m'"]},
    ),
    422: (
        "validation_error",
        "The request has invalid fields: products[0].subscriptionId",
        {"products[0].subscriptionId": ["not allowed for action 'purchase'"]},
    ),
}

ANN = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"  # a buyer of the demo catalog
ONECLICK_REQUEST_EXAMPLES = {
    "purchase": {
        "isMobile": False,
        "chargeMethodId": "cm_ann_visa",
        "currency": "USD",
        "metaData": {"foo": "bar"},
        "products": [{"action": "purchase", "productCode": "report_pdf"}],
    },
    "allActions": {
        "isMobile": True,
        "chargeMethodId": "cm_ann_visa",
        "products": [
            {"action": "purchase", "productCode": "report_pdf"},
            {
                "action": "upgrade",
                "subscriptionId": "1e7b9a8f-3c2d-4d66-9f10-7c4b0e3f2a55",
                "productCode": "premium_1m",
            },
            {
                "action": "downgrade",
                "subscriptionId": "2f8c0b9a-4d3e-4e77-a021-8d5c1f4a3b66",
                "productCode": "premium_1m",
            },
            {"action": "renew", "subscriptionId": "0d6a8f7e-2b1c-4c55-8e0f-6b3a9d2e1f44"},
        ],
    },
}

ONECLICK = Operation(
    "post",
    "/api/v3/buyers/{buyerId}/oneclick",
    {
        "operationId": "createOneclickOrder",
        "tags": [MERCHANT_TAG],
        "summary": "Purchase, upgrade, downgrade and renew in one order",
        "description": "Creates a oneclick order paid with the buyer's saved payment method. "
        "One subscription may appear in at most one upgrade, renew or downgrade entry; "
        "`purchase` takes `productCode`, `upgrade`/`downgrade` take `subscriptionId` and "
        "`productCode`, `renew` takes `subscriptionId` and may name the subscription's own "
        "product in `productCode` (another one is 422 `renew_product_mismatch`). An unknown "
        "product is 404 `Product not found by merchant and code`.",
        "security": MERCHANT_SECURITY,
        "parameters": [
            {
                "name": "buyerId",
                "in": "path",
                "required": True,
                "description": "The buyer's id (a UUID) in this merchant's catalog.",
                "schema": {"type": "string", "format": "uuid", "example": ANN},
            },
            param("XBuyerIp"),
            param("XSource"),
            param("XId"),
            param("XGoogleAnalyticsClientIdOptional"),
            param("IdempotencyKey"),
            param("XRequestId"),
        ],
        "requestBody": _body(OneclickRequestSchema, ONECLICK_REQUEST_EXAMPLES),
        "responses": {
            "200": _ok(
                "The order was created (one shape for every action).",
                OneclickResponseSchema,
                {"data": {"id": "NG1pqx4q"}, "meta": {"type": "entity"}},  # the document's
                replayable=True,
            ),
            **merchant_errors(
                400,
                401,
                404,
                408,
                409,
                413,
                415,
                422,
                503,
                described=ONECLICK_ERRORS,
                examples=ONECLICK_EXAMPLES,
            ),
        },
    },
)

# --- GET /api/v3/orders/{orderId} --------------------------------------------------------

GET_ORDER = Operation(
    "get",
    "/api/v3/orders/{orderId}",
    {
        "operationId": "getOrder",
        "tags": [MERCHANT_TAG],
        "summary": "Read one of the merchant's orders",
        "description": "The stored order of any family, as this merchant sees it. Signed "
        "like the creates (over an empty body); an order of another merchant is 404.",
        "security": MERCHANT_SECURITY,
        "parameters": [
            {
                "name": "orderId",
                "in": "path",
                "required": True,
                "description": "8 base62 characters, or 24 lower-case hex digits "
                "(Payway-style orders).",
                "schema": {
                    "type": "string",
                    "pattern": "^([A-Za-z0-9]{8}|[a-f0-9]{24})$",
                    "example": "NG1pqx4q",
                },
            },
            param("XRequestId"),
        ],
        "responses": {
            "200": _ok("The order.", OrderResponseSchema),
            **merchant_errors(
                400,
                401,
                408,
                413,
                415,
                503,
                described={
                    400: "A body sent with the GET (it is read: the signature covers it) is "
                    "not valid for its Content-Encoding (`invalid_content_encoding`) or "
                    "cannot be read as sent (`bad_request`); the connection is closed.",
                },
                examples={
                    400: (
                        "invalid_content_encoding",
                        "The request body is not valid for its Content-Encoding",
                        {},
                    )
                },
            ),
            # Its own 404: no product or buyer is looked up on a read.
            "404": merchant_error(
                404,
                "`order_not_found`: no order with this id for this merchant.",
                ("order_not_found", "Order not found", {"orderId": ["unknown order"]}),
            ),
        },
    },
)

# --- POST /external/api/v1/me/order (me-order-payway-v1.txt) -----------------------------

ME_ORDER_REQUEST_EXAMPLES = {  # the document's two curl examples
    "document": {
        "product_code": "adeprimo_digital",
        "period_id": "5cb804811d41c82b5c518ea8",
        "start_date": "2019-05-01T00:00:00+00:00",
        "browser_ip": "127.0.0.1",
        "language": "sv-SE",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/60.0.3112.113 Safari/537.36",
        "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
    },
    "documentWithAddress": {
        "product_code": "adeprimo_digital",
        "period_id": "5cb804811d41c82b5c518ea8",
        "start_date": "2019-05-01T00:00:00+00:00",
        "browser_ip": "127.0.0.1",
        "language": "sv-SE",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/60.0.3112.113 Safari/537.36",
        "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
        "address": {
            "first_name": "Erik",
            "last_name": "Eriksson",
            "street": "Ekvägen",
            "street_number": "1",
            "staircase": "A",
            "floor": "15",
            "apartment_number": "1501",
            "zip_code": "120 35",
            "city": "Tyresö",
            "country_code": "SE",
        },
    },
}

ME_ORDER = Operation(
    "post",
    "/external/api/v1/me/order",
    {
        "operationId": "createMeOrder",
        "tags": [CUSTOMER_TAG],
        "summary": "Create invoice order (signed-in customer)",
        "description": "Places an order as the authenticated customer. Only periods paid "
        "by invoice or autogiro are accepted. Errors are one per response, "
        "`{code, field, message}`.",
        "security": CUSTOMER_SECURITY,
        "parameters": [param("IdempotencyKey"), param("XRequestId")],
        "requestBody": _body(MeOrderRequestSchema, ME_ORDER_REQUEST_EXAMPLES),
        "responses": {
            "200": _ok(
                "The order was created.",
                MeOrderResponseSchema,
                {"id": "585a4768edce2c5e6f000001", "order_id": "ADEPRIMO-1234"},
                replayable=True,
            ),
            **payway_errors(400, 401, 403, 408, 409, 413, 415, 503),
        },
    },
)

# --- operations and contract ---------------------------------------------------------------


def _plain(
    operation_id: str,
    tag: str,
    summary: str,
    response: dict[str, Any],
    **other_responses: dict[str, Any],
) -> dict[str, Any]:
    """An operation without authentication (`security: []`) and without a body."""
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "security": [],
        "parameters": [param("XRequestId")],
        "responses": {
            "200": {"headers": request_id_header(), **response},
            **{
                status.lstrip("_"): {"headers": request_id_header(), **other}
                for status, other in other_responses.items()
            },
        },
    }


def _json_document(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"type": "object"}}},
    }


HEALTH_LIVE = Operation(
    "get",
    "/health/live",
    _plain(
        "healthLive",
        OPERATIONS_TAG,
        "Liveness: the process answers",
        {"description": "Alive.", "content": {JSON: {"schema": HealthLiveSchema}}},
    ),
)

HEALTH_READY = Operation(
    "get",
    "/health/ready",
    _plain(
        "healthReady",
        OPERATIONS_TAG,
        "Readiness: the instance can take orders (the database answers, the catalog is read)",
        {
            "description": "Ready: `ok`, or `degraded` while the broker is down (orders are "
            "taken, their events wait in the outbox).",
            "content": {JSON: {"schema": HealthReadySchema}},
        },
        _503={
            "description": "Not ready: the database is down or the catalog not yet read; "
            "`failed` names what is down.",
            "content": {JSON: {"schema": HealthReadySchema}},
        },
    ),
)

METRICS = Operation(
    "get",
    "/metrics",
    _plain(
        "metrics",
        OPERATIONS_TAG,
        "Prometheus metrics",
        {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    ),
)

OPENAPI = Operation(
    "get",
    "/openapi.json",
    _plain(
        "openapiDocument",
        CONTRACT_TAG,
        "This OpenAPI 3.1 document",
        _json_document("The OpenAPI document of the HTTP API."),
    ),
)

ASYNCAPI = Operation(
    "get",
    "/asyncapi.json",
    _plain(
        "asyncapiDocument",
        CONTRACT_TAG,
        "The AsyncAPI document of the order events",
        _json_document("The AsyncAPI document of the `orders` exchange."),
    ),
)

DOCS = Operation(
    "get",
    "/docs",
    _plain(
        "docsPage",
        CONTRACT_TAG,
        "The API documentation page (works offline)",
        {"description": "An HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}},
    ),
)

ASSET_MEDIA_TYPES = ("text/css", "text/javascript", "image/png")
# The size the 416 example names: one of the files, as installed.
ASSET_SIZE = (SWAGGER_UI_DIR / "favicon-16x16.png").stat().st_size

DOCS_ASSETS = Operation(
    "get",
    "/docs/assets/{filename}",
    {
        **_plain(
            "docsAsset",
            CONTRACT_TAG,
            "A static file of the docs page (Swagger UI, served from its Python package)",
            {
                "description": "The file.",
                "content": {media: {"schema": {"type": "string"}} for media in ASSET_MEDIA_TYPES},
            },
            _206={
                "description": "The byte range asked for with `Range`.",
                "content": {media: {"schema": {"type": "string"}} for media in ASSET_MEDIA_TYPES},
            },
            _304={"description": "Unchanged since the `ETag` or time of the copy the client has."},
            _404=merchant_error(
                404,
                "Not a file of the docs page (`route_not_found`).",
                ("route_not_found", "No such endpoint", {}),
            ),
            _412=merchant_error(
                412,
                "`If-Match` or `If-Unmodified-Since` does not hold (`precondition_failed`).",
                (
                    "precondition_failed",
                    "A precondition of the request (If-Match or If-Unmodified-Since) failed",
                    {},
                ),
            ),
            _416=merchant_error(
                416,
                "`Range` is not one byte range starting inside the file "
                "(`range_not_satisfiable`); `Content-Range: bytes */<size>`.",
                (
                    "range_not_satisfiable",
                    f"The requested range is not satisfiable; the file is {ASSET_SIZE} bytes",
                    {"headers.range": [f"must be one byte range starting below {ASSET_SIZE}"]},
                ),
            ),
        ),
        "parameters": [
            {
                "name": "filename",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": sorted(ASSETS)},
            },
            param("XRequestId"),
        ],
    },
)

OPERATIONS: tuple[Operation, ...] = (
    INITIALS,
    ONECLICK,
    GET_ORDER,
    ME_ORDER,
    HEALTH_LIVE,
    HEALTH_READY,
    METRICS,
    OPENAPI,
    ASYNCAPI,
    DOCS,
    DOCS_ASSETS,
)
