"""CORS for the customer endpoints (/external/...), off unless CORS_ALLOWED_ORIGINS is set.

A merchant's shop page calls POST /external/api/v1/me/order from the customer's browser
with the customer's Bearer token, often from another origin than the API's. The merchant
endpoints are signed with a merchant secret that never belongs in a browser, so they
answer no CORS at all.
"""

from __future__ import annotations

from collections.abc import Set

from aiohttp import web

from service import headers
from service.errors import ApiError

ALLOWED_HEADERS = ", ".join(
    ("Authorization", "Content-Type", headers.IDEMPOTENCY_KEY, headers.REQUEST_ID)
)
# What a page's script may read of an answer besides the simple headers.
EXPOSED_HEADERS = ", ".join(
    (headers.REQUEST_ID, headers.IDEMPOTENT_REPLAYED, "Retry-After", "WWW-Authenticate")
)
PREFLIGHT_MAX_AGE = "600"
ANY_ORIGIN = "*"


class OriginNotAllowed(ApiError):
    status = 403
    code = "origin_not_allowed"


def allowed_origin(request: web.Request, origins: Set[str]) -> str | None:
    """The request's Origin when it may read the answer, else None."""
    origin = request.headers.get("Origin")
    if origin is None or not origin.isascii():  # odd bytes arrive as surrogates
        return None
    if ANY_ORIGIN in origins or origin.lower() in origins:
        return origin
    return None


def is_preflight(request: web.Request) -> bool:
    """A browser's CORS preflight; an OPTIONS without Origin is not one (and gets 405)."""
    sent = request.headers
    return (
        request.method == "OPTIONS" and "Origin" in sent and "Access-Control-Request-Method" in sent
    )


def preflight(request: web.Request, origins: Set[str]) -> web.Response:
    """The answer to a browser's preflight of a customer endpoint: which methods and
    headers the page may send. An unknown path is 404, an origin not configured is 403."""
    # No route answers OPTIONS, so a known path matches as "method not allowed".
    error = request.match_info.http_exception
    if not isinstance(error, web.HTTPMethodNotAllowed):
        raise error or web.HTTPNotFound()
    methods = ", ".join(sorted(error.allowed_methods))
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
    """Lets the page of an allowed origin read `response` (any status: errors included).
    Every answer says it varies by Origin, so a cache never hands one origin's to another."""
    if "Access-Control-Allow-Origin" in response.headers:
        return  # a preflight's answer, complete already
    response.headers.add("Vary", "Origin")
    origin = allowed_origin(request, origins)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
