"""Authenticates a merchant request (x-public-key, x-date, x-token) and reads the other
mandatory headers of the merchant endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from schemas.common import parse_rfc3339
from service.auth.signing import compute_token, normalize_token, token_matches
from service.catalog import Catalog, Merchant
from service.domain.ip_addresses import canonical_ip
from service.errors import Unauthorized, ValidationFailed
from service.records import record

AUTHENTICATION_HEADERS = ("x-public-key", "x-date", "x-token")
MAX_HEADER_LENGTH = {"x-source": 64, "x-id": 128, "x-google-analytics-client-id": 255}


@record
class MerchantRequest:
    merchant: Merchant
    public_key: str
    token: str
    buyer_ip: str
    source: str
    source_id: str
    ga_client_id: str | None


def authenticate(
    request: web.Request, body: bytes, catalog: Catalog, window_seconds: int
) -> tuple[Merchant, str]:
    """The merchant whose active key signed this exact request, and the token.

    Every failure is a 401 with its own code; none says which part of a real key was wrong.
    """
    headers = request.headers
    for name in AUTHENTICATION_HEADERS:
        if len(headers.getall(name, ())) > 1:
            # A proxy in front may read the other copy than we do: which was meant is unknown.
            raise Unauthorized(
                f"{name} was sent more than once; send each authentication header once",
                code="duplicate_authentication_header",
                fields={f"headers.{name}": ["must be sent once"]},
            )
    public_key, x_date, token = (headers.get(name) for name in AUTHENTICATION_HEADERS)
    missing = [
        name
        for name, value in zip(AUTHENTICATION_HEADERS, (public_key, x_date, token), strict=True)
        if not value
    ]
    if missing or public_key is None or x_date is None or token is None:
        raise Unauthorized(
            "Missing authentication header(s): " + ", ".join(missing),
            code="missing_authentication",
            fields={f"headers.{name}": ["header is required"] for name in missing},
        )
    try:
        moment = parse_rfc3339(x_date)
    except ValueError:
        raise Unauthorized(
            "x-date must be an RFC 3339 timestamp with offset, e.g. 2026-11-23T13:00:00Z",
            code="invalid_x_date",
            fields={"headers.x-date": ["must be an RFC 3339 timestamp with offset"]},
        ) from None
    if abs((datetime.now(UTC) - moment).total_seconds()) > window_seconds:
        raise Unauthorized(
            f"x-date is more than {window_seconds} s away from server time; "
            "check the clock and sign the request anew",
            code="request_expired",
            fields={"headers.x-date": [f"outside the {window_seconds} s window"]},
        )
    entry = catalog.keys.get(public_key)
    if entry is None:
        raise Unauthorized("Unknown public key", code="unknown_public_key")
    key, merchant = entry
    if not key.active:
        raise Unauthorized("This public key has been revoked", code="revoked_public_key")
    # The path and query exactly as sent: a re-encoded form could differ from what was signed.
    expected = compute_token(key.secret, request.method, request.raw_path, x_date, body)
    if not token_matches(expected, token):
        raise Unauthorized(
            "x-token does not match the request; see the signing scheme in the API docs",
            code="invalid_signature",
        )
    return merchant, normalize_token(token)


def read_merchant_headers(
    request: web.Request, merchant: Merchant, token: str, *, ga_required: bool
) -> MerchantRequest:
    """The non-auth mandatory headers; every bad one is listed under `headers.<name>`."""
    headers = request.headers
    problems: dict[str, list[str]] = {}
    values: dict[str, str | None] = {}
    for name in ("x-buyer-ip", "x-source", "x-id", "x-google-analytics-client-id"):
        value = headers.get(name)
        required = name != "x-google-analytics-client-id" or ga_required
        if value is None or not value.strip():
            if required:
                problems[f"headers.{name}"] = ["header is required"]
            values[name] = None
            continue
        limit = MAX_HEADER_LENGTH.get(name)
        if limit is not None and len(value) > limit:
            problems[f"headers.{name}"] = [f"at most {limit} characters"]
        elif not (value.isascii() and value.isprintable()):
            # Odd bytes reach us as surrogates, which PostgreSQL text cannot store.
            problems[f"headers.{name}"] = ["must be printable ASCII"]
        values[name] = value.strip()
    buyer_ip = values["x-buyer-ip"]
    if buyer_ip is not None:
        try:
            # A zone ("fe80::1%eth0") names an interface of the sender's machine, not the
            # buyer; PostgreSQL's inet refuses it too.
            if "%" in buyer_ip:
                raise ValueError("scoped address")
            buyer_ip = canonical_ip(buyer_ip)
        except ValueError:
            problems["headers.x-buyer-ip"] = ["must be an IPv4 or IPv6 address"]
    if problems:
        raise ValidationFailed(
            "Invalid or missing header(s): " + ", ".join(k[8:] for k in problems),
            code="invalid_headers",
            fields=problems,
        )
    assert buyer_ip is not None
    return MerchantRequest(
        merchant=merchant,
        public_key=headers["x-public-key"],
        token=token,
        buyer_ip=buyer_ip,
        source=values["x-source"] or "",
        source_id=values["x-id"] or "",
        ga_client_id=values["x-google-analytics-client-id"],
    )
