"""Counting HTTP requests for /metrics at the cost of one dict lookup per request.

`Counter.labels(...)` validates and joins its label values and takes a lock on every
call; the labelled children are looked up once per (route, method, status) and kept.
Routes are templates (`/api/v3/orders/{orderId}`, or `unmatched`) and methods outside
the standard set count as `other`, so a client cannot grow the label space.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from service.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    if method not in KNOWN_METHODS:
        method = "OTHER"
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_REQUEST_DURATION.labels(route, method),
        )
    children[0].inc()
    children[1].observe(seconds)
