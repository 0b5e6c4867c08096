"""Schemathesis hooks of the fuzz run (tests/contract/test_fuzz.py): authenticate every
generated request, so the fuzzing reaches the handlers and not only the 401 path.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS; reads its secrets from FUZZ_*
environment variables. The signing is a `requests` auth: it runs on the prepared request,
so the HMAC covers the exact method, path and query, and body bytes that are sent.
"""

from __future__ import annotations

import os

import requests
import schemathesis

from service.auth.signing import signed_headers

MERCHANT_PREFIX = "/api/"
CUSTOMER_PREFIX = "/external/"
SIGNATURE_HEADERS = ("x-public-key", "x-date", "x-token")


class ServiceAuth(requests.auth.AuthBase):
    """Signs merchant requests (x-public-key, x-date, x-token) and gives customer requests
    a Bearer token; other headers stay as schemathesis generated them."""

    def __init__(self, public_key: str, secret: str, bearer_token: str) -> None:
        self.public_key = public_key
        self.secret = secret
        self.bearer_token = bearer_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = request.path_url
        if path.startswith(CUSTOMER_PREFIX):
            request.headers["Authorization"] = f"Bearer {self.bearer_token}"
        elif path.startswith(MERCHANT_PREFIX):
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            # schemathesis sends JSON (and raw examples) as a whole, never streamed.
            assert isinstance(body, bytes), type(body)
            signed = signed_headers(
                self.public_key, self.secret, request.method or "GET", path, body
            )
            for name in SIGNATURE_HEADERS:
                request.headers[name] = signed[name]
        return request


schemathesis.auth.set_from_requests(  # type: ignore[attr-defined]
    ServiceAuth(
        os.environ["FUZZ_PUBLIC_KEY"],
        os.environ["FUZZ_SECRET"],
        os.environ["FUZZ_BEARER_TOKEN"],
    )
)
