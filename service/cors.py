"""CORS for the customer endpoints (/external/...), off unless CORS_ALLOWED_ORIGINS is set.

A merchant's shop page calls POST /external/api/v1/me/order from the customer's browser
with the customer's Bearer token, often from another origin than the API's. The merchant
endpoints are signed with a merchant secret that never belongs in a browser, so they
answer no CORS at all.
"""

from __future__ import annotations

from collections.abc import Set

from aiohttp import web

from service.errors import ApiError

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
# What a page's script may read of an answer besides the simple headers.
EXPOSED_HEADERS = "X-Request-ID, Idempotent-Replayed, Retry-After, WWW-Authenticate"
PREFLIGHT_MAX_AGE = "600"
ANY_ORIGIN = "*"


class OriginNotAllowed(ApiError):
    status = 403
    code = "origin_not_allowed"


def allowed_origin(request: web.Request, origins: Set[str]) -> str | None:
    """The request's Origin when it may read the answer, else None."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if ANY_ORIGIN in origins or origin.lower() in origins:
        return origin
    return None


def is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def preflight(request: web.Request, origins: Set[str]) -> web.Response:
    """The answer to a browser's preflight of a customer endpoint: which methods and
    headers the page may send. An unknown path is 404, an origin not configured is 403."""
    match = request.match_info
    error = match.http_exception
    if isinstance(error, web.HTTPMethodNotAllowed):
        methods = ", ".join(sorted(error.allowed_methods))
    elif error is not None:
        raise error
    else:
        methods = request.method
    origin = allowed_origin(request, origins)
    if origin is None:
        raise OriginNotAllowed(
            f"Origin {request.headers.get('Origin')!r} may not call this API from a browser; "
            "the operator lists allowed origins in CORS_ALLOWED_ORIGINS"
        )
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        },
    )


def allow_reading(request: web.Request, response: web.StreamResponse, origins: Set[str]) -> None:
    """Lets the page of an allowed origin read `response` (any status: errors included)."""
    origin = allowed_origin(request, origins)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")
