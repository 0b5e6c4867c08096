"""Reusable parts of the OpenAPI document: security schemes, header parameters, response
headers and the error responses of both API families."""

from __future__ import annotations

from typing import Any

from schemas.errors import (
    MERCHANT_ERROR_EXAMPLE,
    PAYWAY_ERROR_EXAMPLE,
    MerchantErrorSchema,
    PaywayErrorSchema,
)
from service.auth.bearer import ORDER_WRITE_SCOPE
from service.config import Config
from service.errors import RequestTimeout
from service.idempotency import MAX_KEY_LENGTH
from service.middleware import REQUEST_ID_HEADER, UNSUPPORTED_ENCODING_MESSAGE
from service.pipeline import IDEMPOTENCY_HEADER, REPLAYED_HEADER

JSON = "application/json"

SIGNING_DESCRIPTION = """\
Merchant requests are signed with a key pair of the merchant (public key and secret):

```
string_to_sign = METHOD "\\n" PATH_AND_QUERY "\\n" x-date "\\n" hex(sha256(raw_body))
x-token        = hex(hmac_sha256(secret, string_to_sign))
```

The body digest in `string_to_sign` is lower-case hex; `x-token` is taken in either case.
`raw_body` is the body as the endpoint reads it: for a body sent with a
`Content-Encoding` (gzip, deflate, br, zstd), the bytes after decoding, so sign the JSON
and then compress it.
`x-date` is an RFC 3339 timestamp with offset, at most 300 s from server time. The same
signed request sent twice is refused with 409 `request_replayed` unless it carries an
`Idempotency-Key`. `order-service sign` prints the headers for curl."""

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "merchantPublicKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-public-key",
        "description": "A public key of the merchant account (a merchant may have several). "
        + SIGNING_DESCRIPTION,
    },
    "merchantDate": {
        "type": "apiKey",
        "in": "header",
        "name": "x-date",
        "description": "When the request was signed: RFC 3339 with offset, e.g. "
        "`2026-11-23T13:00:00Z`; refused when more than 300 s from server time.",
    },
    "merchantToken": {
        "type": "apiKey",
        "in": "header",
        "name": "x-token",
        "description": "hex(HMAC-SHA256(secret, string_to_sign)), see merchantPublicKey.",
    },
    "customerBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT of the signed-in customer: `sub` is the customer account, "
        "`org` the merchant code, `scope` (space-separated) must contain "
        f"`{ORDER_WRITE_SCOPE}`. `order-service token` mints one for development.",
    },
}

SecurityRequirements = list[dict[str, list[str]]]
MERCHANT_SECURITY: SecurityRequirements = [
    {"merchantPublicKey": [], "merchantDate": [], "merchantToken": []}
]
CUSTOMER_SECURITY: SecurityRequirements = [{"customerBearer": [ORDER_WRITE_SCOPE]}]


def _header(
    name: str, schema: dict[str, Any], description: str, *, required: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


IP_ADDRESS = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
GA_DESCRIPTION = "Client identifier for Google Analytics, echoed in the response and event."

PARAMETERS: dict[str, dict[str, Any]] = {
    "XBuyerIp": _header(
        "x-buyer-ip",
        {**IP_ADDRESS, "example": "203.0.113.10"},
        "The buyer's IP address (IPv4 or IPv6); stored on the order.",
        required=True,
    ),
    "XSource": _header(
        "x-source",
        {"type": "string", "minLength": 1, "maxLength": 64, "example": "web"},
        "The kind of service that initiates the request; `shop` makes `buyer` mandatory.",
        required=True,
    ),
    "XId": _header(
        "x-id",
        {"type": "string", "minLength": 1, "maxLength": 128, "example": "checkout"},
        "Identifier of the service the request is made from.",
        required=True,
    ),
    "XGoogleAnalyticsClientId": _header(
        "x-google-analytics-client-id",
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "example": "GA1.3.1034945594.1649316099",
        },
        GA_DESCRIPTION,
        required=True,
    ),
    "XGoogleAnalyticsClientIdOptional": _header(
        "x-google-analytics-client-id",
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "example": "GA1.3.1034945594.1649316099",
        },
        GA_DESCRIPTION,
        required=False,
    ),
    "IdempotencyKey": _header(
        IDEMPOTENCY_HEADER,
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LENGTH,
            "pattern": "^[\\x20-\\x7E]+$",
        },
        "Makes the request safe to retry (see the README's Idempotency section), e.g. a "
        "UUID the client makes for the order it means to create. "
        f"1 to {MAX_KEY_LENGTH} printable ASCII characters, scoped to the merchant (to the "
        "customer on /external/). The first request with a key is processed and its "
        "response stored; the same key with the same request (method, path and query, and "
        "the same JSON body, whatever its key order or spacing) returns that response with "
        f"`{REPLAYED_HEADER}: true`; with a different request it is refused "
        "(`idempotency_key_reused`); while the first is in flight, 409 "
        "`idempotency_key_in_use`. A request that fails is not stored. Keys expire "
        "after 24 hours (IDEMPOTENCY_TTL_SECONDS).",
        required=False,
    ),
    "XRequestId": _header(
        REQUEST_ID_HEADER,
        {"type": "string", "pattern": "^[!-~]{1,200}$"},
        "Correlation id for logs: 1 to 200 visible ASCII characters, echoed in the "
        "response. When absent, or any other value, a new id is generated (and echoed).",
        required=False,
    ),
}

HEADERS: dict[str, dict[str, Any]] = {
    "XRequestId": {
        "description": "The request id (the one sent, or a generated one).",
        "schema": {"type": "string"},
        "required": True,
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored response of an earlier request with "
        "the same Idempotency-Key; absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWWAuthenticate": {
        "description": "The Bearer challenge (RFC 6750).",
        "schema": {"type": "string"},
        "required": True,
    },
    "RetryAfter": {
        "description": "Seconds to wait before retrying (503, and 409 `idempotency_key_in_use`).",
        "schema": {"type": "string"},
    },
}


def ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def param(name: str) -> str:
    """A parameter component by name (apispec turns the name into a $ref)."""
    return name


def request_id_header() -> dict[str, Any]:
    return {REQUEST_ID_HEADER: ref("headers", "XRequestId")}


UNSUPPORTED_ENCODING = (
    "`unsupported_content_encoding`: the body comes in a Content-Encoding other than "
    "identity, gzip, deflate, br or zstd."
)

BODY_TIMEOUT = (
    "`request_timeout`: the body stopped arriving and was not complete within "
    "`BODY_READ_TIMEOUT` (30 s by default); the connection is closed."
)
BODY_TIMEOUT_MESSAGE = RequestTimeout.after(Config().body_read_timeout).message

MERCHANT_ERRORS: dict[int, str] = {
    400: "The body is not JSON (`json_parser_error`) or not `application/json` "
    "(`invalid_content_type_error`), is not valid for its Content-Encoding "
    "(`invalid_content_encoding`) or cannot be read as sent (`bad_request`: broken "
    "chunked framing; both close the connection), or the Idempotency-Key is not 1 to 255 "
    "printable characters (`invalid_idempotency_key`).",
    401: "Authentication failed: `missing_authentication`, `duplicate_authentication_header`, "
    "`invalid_x_date`, `request_expired`, `unknown_public_key`, `revoked_public_key`, "
    "`invalid_signature`.",
    404: "Not found for this merchant: `product_not_found` (message `Product not found by "
    "merchant and code`), `buyer_not_found`, `order_not_found`, ...",
    409: "`request_replayed`: this signed request was already used (the message names the "
    "order it created; sign anew, or send an "
    "Idempotency-Key to retry safely); `idempotency_key_in_use`: a request with this key "
    "is still being processed.",
    408: BODY_TIMEOUT,
    413: "The body is larger than `REQUEST_BODY_LIMIT` (64 KiB by default; "
    "`payload_too_large`, the message names the limit).",
    415: UNSUPPORTED_ENCODING,
    422: "Invalid headers (`invalid_headers`) or fields (`validation_error`, every bad field "
    "by its path), a rule of the catalog (`coupon_expired`, `coupon_exhausted`, "
    "`price_not_available`, ...), or `idempotency_key_reused`.",
    503: "The database is unreachable (`database_unavailable`), or rolled the order back "
    "for a conflict with concurrent writes (`database_conflict`, order operations); "
    "nothing was written: retry after `Retry-After`.",
}

PAYWAY_ERRORS: dict[int, str] = {
    400: "`invalid_parameter` (with `field`), `unknown_parameter`, `json_parser_error`, "
    "`invalid_content_type_error`, `invalid_content_encoding`, `bad_request` (broken "
    "chunked framing), `invalid_idempotency_key` or `idempotency_key_reused`.",
    401: "`unauthorized`: the Bearer token is missing, malformed, expired, badly signed or "
    "for an unknown merchant, or the Authorization header was sent more than once.",
    403: f"`insufficient_scope`: the token does not grant `{ORDER_WRITE_SCOPE}`. (A "
    "browser's CORS preflight, `OPTIONS`, from an origin not in CORS_ALLOWED_ORIGINS gets "
    "403 `origin_not_allowed`.)",
    408: BODY_TIMEOUT,
    409: "`idempotency_key_in_use`: a request with this Idempotency-Key is still being processed.",
    413: "The body is larger than `REQUEST_BODY_LIMIT` (64 KiB by default; "
    "`payload_too_large`, the message names the limit).",
    415: UNSUPPORTED_ENCODING,
    503: "The database is unreachable (`database_unavailable`), or rolled the order back "
    "for a conflict with concurrent writes (`database_conflict`, order operations); "
    "nothing was written: retry after `Retry-After`.",
}


# One example per status: (code, message, fields).
MERCHANT_EXAMPLES: dict[int, tuple[str, str, dict[str, list[str]]]] = {
    400: ("json_parser_error", "The request body is not valid JSON", {}),
    401: (
        "invalid_signature",
        "x-token does not match the request; see the signing scheme in the API docs",
        {},
    ),
    403: ("http_error", "Forbidden", {}),
    404: (
        "product_not_found",
        "Product not found by merchant and code",
        {"product.code": ["unknown product 'premium_2m'"]},
    ),
    409: (
        "request_replayed",
        "This signed request was already used to create order NG1pqx4q; sign each request "
        "anew (new x-date), or send an Idempotency-Key to retry safely and get the first "
        "answer again",
        {},
    ),
    408: ("request_timeout", BODY_TIMEOUT_MESSAGE, {}),
    413: ("payload_too_large", "Request body is larger than the limit of 64 KiB", {}),
    415: ("unsupported_content_encoding", UNSUPPORTED_ENCODING_MESSAGE, {}),
    422: (
        "validation_error",
        "The request has invalid fields: product.code",
        {"product.code": ["Missing data for required field."]},
    ),
    503: ("database_unavailable", "The database is unavailable; retry shortly", {}),
}
PAYWAY_EXAMPLES: dict[int, dict[str, str]] = {
    400: PAYWAY_ERROR_EXAMPLE,
    401: {"code": "unauthorized", "message": "The token has expired"},
    403: {
        "code": "insufficient_scope",
        "message": f"The token does not grant the scope {ORDER_WRITE_SCOPE}",
    },
    409: {
        "code": "idempotency_key_in_use",
        "message": "A request with this Idempotency-Key is still being processed; retry later",
    },
    408: {"code": "request_timeout", "message": BODY_TIMEOUT_MESSAGE},
    413: {
        "code": "payload_too_large",
        "message": "Request body is larger than the limit of 64 KiB",
    },
    415: {"code": "unsupported_content_encoding", "message": UNSUPPORTED_ENCODING_MESSAGE},
    503: {"code": "database_unavailable", "message": "The database is unavailable; retry shortly"},
}


def merchant_error_example(
    status: int, example: tuple[str, str, dict[str, list[str]]] | None = None
) -> dict[str, Any]:
    code, message, fields = example or MERCHANT_EXAMPLES[status]
    return {
        "error": {"code": code, "message": message, "fields": fields},
        "meta": dict(MERCHANT_ERROR_EXAMPLE["meta"]),
    }


def _error_headers(status: int, *, payway: bool) -> dict[str, Any]:
    headers = request_id_header()
    if status in (409, 503):
        # 409: only with idempotency_key_in_use.
        headers["Retry-After"] = ref("headers", "RetryAfter")
    if payway and status in (401, 403):
        headers["WWW-Authenticate"] = ref("headers", "WWWAuthenticate")
    return headers


def merchant_error(
    status: int,
    description: str | None = None,
    example: tuple[str, str, dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    """A response of the merchant error format; `example` is (code, message, fields)."""
    return {
        "description": description or MERCHANT_ERRORS[status],
        "headers": _error_headers(status, payway=False),
        "content": {
            JSON: {
                "schema": MerchantErrorSchema,
                "example": merchant_error_example(status, example),
            }
        },
    }


# What any operation may also answer, in its family's error format.
OTHER_ERRORS = (
    "Any other error, in the same format: `405 method_not_allowed` (with `Allow`) for a "
    "method the path does not take, `404 route_not_found` for a path the API does not "
    "have, `500 internal_error` (logged, never a traceback). A request that is not valid "
    "HTTP gets `400 malformed_http_request` in the format of the family its request line "
    "names (the merchant format when not even that can be read)."
)


def merchant_errors(
    *statuses: int,
    described: dict[int, str] | None = None,
    examples: dict[int, tuple[str, str, dict[str, list[str]]]] | None = None,
) -> dict[str, Any]:
    """The given statuses' responses (`described` words some for the operation, and
    `examples` gives its own (code, message, fields) examples), and `default` for any
    other error."""
    described = described or {}
    examples = examples or {}
    return {
        **{
            str(status): merchant_error(status, described.get(status), examples.get(status))
            for status in statuses
        },
        "default": {
            "description": OTHER_ERRORS,
            "headers": request_id_header(),
            "content": {JSON: {"schema": MerchantErrorSchema}},
        },
    }


def payway_errors(*statuses: int) -> dict[str, Any]:
    """The given statuses' responses, and `default` for any other error."""
    return {
        **{
            str(status): {
                "description": PAYWAY_ERRORS[status],
                "headers": _error_headers(status, payway=True),
                "content": {
                    JSON: {"schema": PaywayErrorSchema, "example": PAYWAY_EXAMPLES[status]}
                },
            }
            for status in statuses
        },
        "default": {
            "description": OTHER_ERRORS,
            "headers": request_id_header(),
            "content": {JSON: {"schema": PaywayErrorSchema}},
        },
    }
