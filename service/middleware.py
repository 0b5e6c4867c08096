"""The one request middleware: request id, error rendering per endpoint family, and the
JSON access line. One middleware instead of three keeps the per-request overhead small."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from structlog.contextvars import bind_contextvars, clear_contextvars

from service import cors, headers
from service.db import DATABASE_DOWN
from service.domain.identifiers import shown_id
from service.duplicate_keys import first_duplicate_key, has_no_duplicate_keys
from service.errors import (
    ApiError,
    BadRequest,
    ClientClosedRequest,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UnreadableBody,
)
from service.logs import log_access
from service.request_metrics import observe_request
from service.state import CONFIG, MERCHANT_CODE, ORDER_ID

error_log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Logged for a request cut off before its answer (client gone, or shutdown), as nginx does.
CLIENT_CLOSED_REQUEST = ClientClosedRequest.status

REQUEST_ID_HEADER = headers.REQUEST_ID
# The codings aiohttp decodes (br and zstd through Brotli and backports.zstd): with any
# other, the handler would get the body still encoded.
DECODED_CONTENT_ENCODINGS = frozenset({"identity", "gzip", "deflate", "br", "zstd"})
UNSUPPORTED_ENCODING_MESSAGE = "Content-Encoding must be one of identity, gzip, deflate, br or zstd"
# JSON is UTF-8 (RFC 8259); a body declared in another charset would be misread.
UTF_8 = frozenset({"utf-8", "utf8"})
# A caller's X-Request-ID is kept only if it is 1 to 200 visible ASCII characters: it is
# echoed in a header and written to every log line of the request.
_CALLER_REQUEST_ID = re.compile(r"[!-~]{1,200}")
PAYWAY_PREFIX = "/external/"
# Sent instead of aiohttp's default, which names the Python and aiohttp versions.
SERVER_NAME = "order-service"


def new_request_id() -> str:
    """32 random hex characters, as uuid4().hex but a quarter of its cost."""
    return os.urandom(16).hex()


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def merchant_error_body(error: ApiError, request_id: str) -> dict[str, Any]:
    return {
        "error": {"code": error.code, "message": error.message, "fields": error.fields},
        "meta": {"type": "error", "requestId": request_id},
    }


def payway_error_body(error: ApiError, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code}
    if error.field is not None:
        body["field"] = error.field
    body["message"] = error.message
    return body


def render_error(
    request: web.BaseRequest, error: ApiError, request_id: str, *, path: str | None = None
) -> web.Response:
    """The error's answer in the format of the family of `path` (the request's own path
    unless given)."""
    if (request.path if path is None else path).startswith(PAYWAY_PREFIX):
        body = payway_error_body(error, request_id)
    else:
        body = merchant_error_body(error, request_id)
    response = web.json_response(body, status=error.status, dumps=json_dumps)
    response.headers.update(error.headers)
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge.over(request.app[CONFIG].request_body_limit)
    return error_for_http_exception(exc)


def error_for_http_exception(exc: web.HTTPException) -> ApiError:
    """The error answering what aiohttp raised itself: no such route, a method the route
    does not take, or another HTTP error."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("No such endpoint", code="route_not_found")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return ApiError(
            f"Method not allowed; use {allowed}",
            code="method_not_allowed",
            status=405,
            headers={"Allow": allowed},
        )
    return ApiError(exc.reason, code="http_error", status=exc.status)


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not _CALLER_REQUEST_ID.fullmatch(request_id):
        request_id = new_request_id()
    clear_contextvars()
    bind_contextvars(request_id=request_id)
    response: web.StreamResponse
    cors_origins = request.app[CONFIG].cors_allowed_origins
    customer_cors = bool(cors_origins) and request.path.startswith(PAYWAY_PREFIX)
    try:
        if customer_cors and cors.is_preflight(request):
            response = cors.preflight(request, cors_origins)
        else:
            response = await handler(request)
    except ApiError as exc:
        response = render_error(request, exc, request_id)
        if exc.closes_connection:
            response.force_close()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = render_error(request, _from_http_exception(request, exc), request_id)
    except DATABASE_DOWN as exc:
        error_log.warning("database_unavailable", error=repr(exc))
        response = render_error(
            request,
            ServiceUnavailable(
                "The database is unavailable; retry shortly",
                code="database_unavailable",
                headers={"Retry-After": "1"},
            ),
            request_id,
        )
    except asyncio.CancelledError:
        # Shutdown cut the request off (aiohttp cancels a handler when the client hangs up
        # only with handler_cancellation on): no answer goes out, but the request is still
        # logged and counted, with nginx's 499.
        _account(request, CLIENT_CLOSED_REQUEST, started, cancelled=True)
        raise
    except Exception:  # noqa: BLE001 - the last line of defence: JSON, never a traceback
        error_log.exception("unhandled_error", method=request.method, path=request.path)
        response = render_error(
            request,
            ApiError("Internal error; it has been logged", code="internal_error", status=500),
            request_id,
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers[hdrs.SERVER] = SERVER_NAME
    if customer_cors:
        cors.allow_reading(request, response, cors_origins)
    if isinstance(response, StatusSetInPrepare):
        response.account_status = lambda status: _account(request, status, started)
    else:
        _account(request, response.status, started)
    return response


class StatusSetInPrepare(web.StreamResponse):
    """A response whose status is settled only in prepare(), after the middleware has
    returned (a FileResponse's 206, 304, 412, 416): its access line and metrics are
    written then, with that status, through `account_status`."""

    account_status: Callable[[int], None] | None = None

    def status_settled(self) -> None:
        if self.account_status is not None:
            self.account_status(self.status)
            self.account_status = None


def _account(request: web.Request, status: int, started: float, **extra: Any) -> None:
    """The request's access log line and its metrics."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    duration = time.perf_counter() - started
    observe_request(route, request.method, status, duration)
    log_access(
        {
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "merchant": request.get(MERCHANT_CODE),
            "order_id": request.get(ORDER_ID),
            **extra,
        }
    )


async def read_body(request: web.Request) -> bytes:
    """The raw body (the signature covers these exact bytes, decoded if it came
    compressed), within the size limit."""
    # Two Content-Encoding headers are one list of codings (RFC 9110), which aiohttp does
    # not decode (it takes the last header alone): like "gzip, br", refused.
    encoding = ",".join(request.headers.getall(hdrs.CONTENT_ENCODING, ())) or None
    if encoding is not None and encoding.strip().lower() not in DECODED_CONTENT_ENCODINGS:
        raise ApiError(
            UNSUPPORTED_ENCODING_MESSAGE,
            code="unsupported_content_encoding",
            status=415,
        )
    try:
        if request.content.is_eof():
            return await request.read()
        # Still arriving: a client that stops sending mid-body would otherwise hold the
        # request and its connection until it hangs up.
        timeout = request.app[CONFIG].body_read_timeout
        try:
            async with asyncio.timeout(timeout):
                return await request.read()
        except TimeoutError:
            raise RequestTimeout.after(timeout) from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge.over(request.app[CONFIG].request_body_limit) from None
    except OSError:
        # The connection's reset, raised by the read: no database is involved.
        raise ClientClosedRequest(
            "The client closed the connection before its request body was read"
        ) from None
    except (ContentEncodingError, RequestPayloadError) as exc:
        # The C parser hands the decoding error on wrapped in a RequestPayloadError, which
        # also stands for a body that breaks its framing (a bad chunk).
        if isinstance(exc, ContentEncodingError) or isinstance(exc.__cause__, ContentEncodingError):
            raise UnreadableBody(
                "The request body is not valid for its Content-Encoding",
                code="invalid_content_encoding",
            ) from None
        raise UnreadableBody("The request body could not be read as sent") from None


def parse_json_object(request: web.Request, body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says why not."""
    if request.content_type != "application/json":
        raise BadRequest("Content-Type must be application/json", code="invalid_content_type_error")
    if request.charset is not None and request.charset.lower() not in UTF_8:
        raise BadRequest(
            "Content-Type must name no charset or UTF-8", code="invalid_content_type_error"
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON", code="json_parser_error") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object", code="json_parser_error")
    if has_no_duplicate_keys(body, value):
        return value
    try:
        duplicate = first_duplicate_key(body.decode())
    except RecursionError:
        # orjson allows 1024 levels, the standard library's scanner (on Python 3.11) fewer.
        raise BadRequest(
            "The request body is nested too deeply", code="json_parser_error"
        ) from None
    except ValueError:
        # Whatever else the standard library refuses in what orjson took.
        raise BadRequest("The request body is not valid JSON", code="json_parser_error") from None
    if duplicate is not None:
        shown = shown_id(duplicate)
        raise BadRequest(
            f"The request body gives the key {shown!r} twice in one object",
            code="json_parser_error",
        )
    return value
