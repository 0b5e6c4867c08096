"""Real, unique, correctly signed orders for each endpoint, and corpus files for wrk.

Every request is an order a merchant (or a signed-in customer) could really send: its
own body (a unique `sequence`, click id and merchant reference), realistic metaData, and
for the merchant endpoints an x-token over that exact body signed with the demo key, so
no request is refused as a replay. x-date is taken when the request is built, so a corpus
must be sent within the 300 s window: build it right before the run that sends it.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson

from service.auth.signing import signed_headers

PUBLIC_KEY = "pk_eyezy_1"
SECRET = "sk_eyezy_1_secret"
BUYER_ID = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"
CHARGE_METHOD_ID = "cm_ann_visa"
PAYWAY_ORG = "adeprimo"
PAYWAY_PRODUCT = "adeprimo_digital"
PAYWAY_PERIOD = "5cb804811d41c82b5c518ea8"
ORDER_WRITE_SCOPE = "/external/me/order/w"
# Customer accounts of the Payway-style endpoint, used in turn: each account orders at
# most once every TOKEN_POOL requests, as real customers would (never concurrently).
TOKEN_POOL = 2048
SEPARATOR = b"\0"  # between requests in a corpus file; never inside an HTTP/1.1 request

CAMPAIGNS = ("black_friday_2026", "spring_sale", "retargeting_q4", "organic", "newsletter_42")
SOURCES = (("google", "cpc"), ("facebook", "paid_social"), ("newsletter", "email"))
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def raw(self, host: str) -> bytes:
        """The request as HTTP/1.1 bytes, keep-alive, exactly what wrk writes to the socket."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def meta_data(n: int, click_id: str) -> dict[str, object]:
    """The merchant's key-value metaData: flat, strings, numbers, booleans and a null."""
    utm_source, utm_medium = SOURCES[n % len(SOURCES)]
    return {
        "campaign": CAMPAIGNS[n % len(CAMPAIGNS)],
        "utmSource": utm_source,
        "utmMedium": utm_medium,
        "landingPage": "/pricing?plan=premium&period=monthly",
        "abTest": "checkout_v2",
        "variant": "B" if n % 2 else "A",
        "clickId": click_id,
        "sessionVisits": n % 7 + 1,
        "returningCustomer": n % 3 == 0,
        "cartValueUsd": 29.99,
        "referrer": None,
        "deviceType": "desktop" if n % 4 else "mobile",
    }


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json"}


def initials_request(n: int, run: str) -> Request:
    path = "/api/v2/initials/url"
    body = orjson.dumps(
        {
            "product": {"code": "premium_1m", "currency": "USD"},
            "buyer": {
                "email": f"buyer.{run}.{n}@example.com",
                "firstName": "Ann",
                "lastName": "Lee",
                "country": "US",
                "locale": "en-US",
            },
            "metaData": meta_data(n, f"{run}-{n}"),
            "autoChargeStatus": None,
            "sequence": f"{run}{n:012d}",
            "discount": 15 if n % 5 == 0 else 0,
            "subbrand": "eyezy_app_com",
        }
    )
    headers = _json_headers()
    headers.update(signed_headers(PUBLIC_KEY, SECRET, "POST", path, body))
    return Request("POST", path, headers, body)


def oneclick_request(n: int, run: str) -> Request:
    path = f"/api/v3/buyers/{BUYER_ID}/oneclick"
    body = orjson.dumps(
        {
            "isMobile": n % 4 == 0,
            "chargeMethodId": CHARGE_METHOD_ID,
            "currency": "USD",
            "metaData": meta_data(n, f"{run}-{n}"),
            "products": [{"action": "purchase", "productCode": "premium_1m"}],
        }
    )
    headers = _json_headers()
    headers.update(signed_headers(PUBLIC_KEY, SECRET, "POST", path, body))
    return Request("POST", path, headers, body)


def customer_tokens(secret: str, run: str, count: int = TOKEN_POOL) -> list[str]:
    """Bearer tokens of `count` customers of the adeprimo merchant, valid for an hour."""
    now = int(time.time())
    # The development secret of the Makefile is shorter than PyJWT recommends; the
    # service is configured with the same one, so the warning says nothing here.
    warnings.filterwarnings("ignore", message=".*HMAC key.*", module="jwt")
    return [
        jwt.encode(
            {
                "sub": f"customer-{run}-{i}",
                "org": PAYWAY_ORG,
                "scope": f"{ORDER_WRITE_SCOPE} /external/me/r",
                "iat": now,
                "exp": now + 3600,
            },
            secret,
            algorithm="HS256",
        )
        for i in range(count)
    ]


def me_order_request(n: int, run: str, tokens: list[str]) -> Request:
    path = "/external/api/v1/me/order"
    body = orjson.dumps(
        {
            "product_code": PAYWAY_PRODUCT,
            "period_id": PAYWAY_PERIOD,
            "browser_ip": f"198.51.100.{n % 250 + 1}",
            "language": "sv-SE",
            "user_agent": BROWSER,
            "receipt_url": f"https://adeprimo.example/receipt/{run}-{n}",
            "traffic_source": CAMPAIGNS[n % len(CAMPAIGNS)],
            "merchant_reference": f"{run}-{n}",
        }
    )
    headers = _json_headers()
    headers["Authorization"] = f"Bearer {tokens[n % len(tokens)]}"
    return Request("POST", path, headers, body)


def floor_request(n: int, run: str) -> Request:
    """The initials body, to the floor (which ignores the headers but reads them all)."""
    signed = initials_request(n, run)
    return Request("POST", "/floor/order", signed.headers, signed.body)


Builder = Callable[[int], Request]


def builder_for(endpoint: str, run: str, jwt_secret: str) -> Builder:
    """Request n of `endpoint`; `run` keeps bodies unique across runs and databases."""
    if endpoint == "initials":
        return lambda n: initials_request(n, run)
    if endpoint == "oneclick":
        return lambda n: oneclick_request(n, run)
    if endpoint == "me_order":
        tokens = customer_tokens(jwt_secret, run)
        return lambda n: me_order_request(n, run, tokens)
    if endpoint == "floor":
        return lambda n: floor_request(n, run)
    raise ValueError(f"unknown endpoint {endpoint!r}")


def new_run_tag() -> str:
    """A short tag unique to one corpus, so no two corpora share a body."""
    return os.urandom(4).hex()


def write_corpus(prefix: Path, build: Builder, count: int, threads: int, host: str) -> list[Path]:
    """`count` requests split over one file per wrk thread (`prefix.0`, `prefix.1`...)."""
    numbers: Iterator[int] = itertools.count()
    paths: list[Path] = []
    for thread in range(threads):
        share = count // threads + (1 if thread < count % threads else 0)
        path = prefix.with_name(f"{prefix.name}.{thread}")
        with path.open("wb") as out:
            for n in itertools.islice(numbers, share):
                out.write(build(n).raw(host))
                out.write(SEPARATOR)
        paths.append(path)
    return paths
