"""Merchant request signing (x-token), as ../shared/DESIGN.md defines it.

string_to_sign = METHOD "\n" PATH_AND_QUERY "\n" x-date "\n" hex(sha256(raw_body))
x-token        = hex(hmac_sha256(secret, string_to_sign))
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime


def string_to_sign(method: str, path_and_query: str, x_date: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path_and_query}\n{x_date}\n{digest}".encode()


def compute_token(secret: str, method: str, path_and_query: str, x_date: str, body: bytes) -> str:
    message = string_to_sign(method, path_and_query, x_date, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing tells nothing about how much of a token was right.
    Hex digits match in either case (some languages print upper case); compare the token
    as normalize_token gives it. A header that is not even ASCII (aiohttp hands odd bytes
    over as surrogates) is no match.
    """
    if not given.isascii():
        return False
    return hmac.compare_digest(expected.encode(), normalize_token(given).encode())


def normalize_token(token: str) -> str:
    """The token in the lower case compute_token prints: the form stored for replay checks,
    so the same token in upper case is the same request."""
    return token.lower()


def format_x_date(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with microseconds: two identical requests signed within the same
    second still get different tokens, so neither is taken for a replay of the other."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_headers(
    public_key: str,
    secret: str,
    method: str,
    path_and_query: str,
    body: bytes = b"",
    *,
    buyer_ip: str = "203.0.113.10",
    source: str = "web",
    source_id: str = "checkout",
    ga_client_id: str | None = "GA1.2.1234567890.1700000000",
    moment: datetime | None = None,
) -> dict[str, str]:
    """Every header a merchant endpoint needs, signed for this exact request.

    >>> headers = signed_headers("pk_eyezy_1", "sk_eyezy_1_secret", "POST",
    ...                          "/api/v2/initials/url", b'{"product": {"code": "premium_1m"}}')
    """
    x_date = format_x_date(moment)
    headers = {
        "x-public-key": public_key,
        "x-buyer-ip": buyer_ip,
        "x-date": x_date,
        "x-token": compute_token(secret, method, path_and_query, x_date, body),
        "x-source": source,
        "x-id": source_id,
    }
    if ga_client_id is not None:
        headers["x-google-analytics-client-id"] = ga_client_id
    return headers
