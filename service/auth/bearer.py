"""Bearer tokens of the Payway-style customer API.

A token is a JWT whose `sub` is the customer account, whose `org` is the merchant code and
whose `scope` lists the granted scopes, space-separated. It is verified with the key from
configuration (JWT_SECRET for HS*, JWT_PUBLIC_KEY_FILE for RS*/ES*/PS*), with the accepted
algorithms pinned by JWT_ALGORITHMS, and with issuer and audience checked when configured.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.catalog import Catalog, Merchant
from service.config import Config
from service.errors import Forbidden, Unauthorized

ORDER_WRITE_SCOPE = "/external/me/order/w"
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
MAX_ACCOUNT_LENGTH = 255  # customers.account
# Verified tokens remembered per process (a few hundred bytes each).
VERIFIED_TOKENS_KEPT = 4096
# RFC 6750 section 3: the challenge a client gets with a 401 / 403.
CHALLENGE_MISSING = "Bearer"
CHALLENGE_INVALID = 'Bearer error="invalid_token"'


@dataclass(frozen=True, slots=True)
class Customer:
    """The signed-in customer a verified token speaks for."""

    account: str
    merchant: Merchant
    scopes: frozenset[str]


def _unauthorized(message: str, challenge: str = CHALLENGE_INVALID) -> Unauthorized:
    return Unauthorized(message, code="unauthorized", headers={"WWW-Authenticate": challenge})


def authorization_header(values: list[str]) -> str | None:
    """The one Authorization header of a request (`headers.getall`), or None. Two are
    refused: a proxy in front may have read the other one."""
    if len(values) > 1:
        raise _unauthorized("Send one Authorization header, not several")
    return values[0] if values else None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if authorization is None or not authorization.strip():
        raise _unauthorized(
            "Missing Bearer token in the Authorization header", challenge=CHALLENGE_MISSING
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    # A JWT is ASCII; anything else (odd bytes arrive as surrogates) is malformed.
    if scheme.lower() != "bearer" or not token or " " in token or not token.isascii():
        raise _unauthorized("The Authorization header must be 'Bearer <token>'")
    return token


@functools.lru_cache(maxsize=4)
def _public_key(path: Path) -> Any:
    """The parsed PEM public key, read once per process (a restart picks up a new file)."""
    return load_pem_public_key(path.read_bytes())


def _verification_key(config: Config, algorithm: str) -> tuple[Any, list[str]]:
    """The key for a token signed with `algorithm`, and the algorithms that key may verify.

    An HMAC secret is only ever used with HS* and a public key only with asymmetric
    algorithms, so a token cannot pick the other family (algorithm confusion).
    """
    if algorithm not in config.jwt_algorithms:
        raise _unauthorized("The token is signed with an algorithm that is not accepted")
    if algorithm in HMAC_ALGORITHMS:
        if not config.jwt_secret:
            raise _unauthorized("The token is signed with an algorithm that is not accepted")
        return config.jwt_secret, [a for a in config.jwt_algorithms if a in HMAC_ALGORITHMS]
    if config.jwt_public_key_file is None:
        raise _unauthorized("The token is signed with an algorithm that is not accepted")
    asymmetric = [a for a in config.jwt_algorithms if a not in HMAC_ALGORITHMS]
    return _public_key(config.jwt_public_key_file), asymmetric


CLAIM_ERRORS = (
    jwt.MissingRequiredClaimError,
    jwt.InvalidIssuerError,
    jwt.InvalidAudienceError,
    jwt.ImmatureSignatureError,
    jwt.InvalidIssuedAtError,
)


def verify_token(token: str, config: Config) -> dict[str, Any]:
    """The token's claims after checking signature, expiry (with leeway), issuer, audience."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError:
        raise _unauthorized("The token is malformed") from None
    if not isinstance(algorithm, str):
        raise _unauthorized("The token is malformed")
    key, algorithms = _verification_key(config, algorithm)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            leeway=config.jwt_leeway_seconds,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("The token has expired") from None
    except jwt.InvalidSignatureError:
        raise _unauthorized("The token's signature is not valid") from None
    except CLAIM_ERRORS as exc:
        # PyJWT's words name the claim ('Token is missing the "exp" claim', 'Invalid
        # issuer'): worth passing on. Its other messages describe its own API.
        raise _unauthorized(f"The token is not valid: {exc}") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("The token is malformed") from None
    # PyJWT also takes a numeric string ("1767225600") as exp; RFC 7519 wants a number, and
    # VerifiedTokens compares it with the clock on every later use.
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise _unauthorized("The token's exp claim must be a number (NumericDate)")
    return claims


class VerifiedTokens:
    """The claims of tokens this process has already verified, least recently used first.

    A signed-in customer sends the same token with every request until it expires, and
    neither its signature nor its issuer or audience can change in that time, so they are
    checked once: PyJWT's decode was a tenth of a customer order's CPU. Expiry is checked
    on every use. Only tokens that passed verification are kept, so invalid tokens cannot
    push valid ones out; the merchant and scope are read from the claims on every request,
    against the catalog of the moment.
    """

    def __init__(self, config: Config, size: int = VERIFIED_TOKENS_KEPT) -> None:
        self._config = config
        self._size = size
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._claims)

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims: verified now, or earlier and not expired since."""
        known = self._claims.get(token)
        if known is None:
            claims = verify_token(token, self._config)
            self._claims[token] = claims
            if len(self._claims) > self._size:
                self._claims.popitem(last=False)
            return claims
        if time.time() > known["exp"] + self._config.jwt_leeway_seconds:
            del self._claims[token]
            raise _unauthorized("The token has expired")
        self._claims.move_to_end(token)
        return known


def customer_from_claims(claims: Mapping[str, Any], catalog: Catalog) -> Customer:
    account = claims.get("sub")
    if (
        not isinstance(account, str)
        or not 1 <= len(account) <= MAX_ACCOUNT_LENGTH
        or not account.strip()
        or not account.isprintable()
    ):
        raise _unauthorized("The token's sub claim must name the customer account")
    org = claims.get("org")
    merchant = catalog.merchants_by_code.get(org) if isinstance(org, str) else None
    if merchant is None:
        raise _unauthorized("The token's org claim does not name a known merchant")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise _unauthorized("The token's scope claim must be a space-separated string")
    return Customer(account=account, merchant=merchant, scopes=frozenset(scope.split()))


def authenticate_customer(
    authorization: str | None, tokens: VerifiedTokens, catalog: Catalog, required_scope: str
) -> Customer:
    """The customer of a valid token that grants `required_scope`.

    401 `unauthorized` for a missing, malformed, expired or badly signed token or an unknown
    merchant; 403 `insufficient_scope` when the token lacks the scope.
    """
    claims = tokens.claims(bearer_token(authorization))
    customer = customer_from_claims(claims, catalog)
    if required_scope not in customer.scopes:
        raise Forbidden(
            f"The token does not grant the scope {required_scope}",
            code="insufficient_scope",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{required_scope}"'
            },
        )
    return customer


def unverifiable_reason(config: Config) -> str | None:
    """Why no Bearer token can be verified with this configuration (JWT_ALGORITHMS names
    only algorithms whose key is missing), or None. The service still starts, since
    merchants' endpoints need no token, but every customer order would get 401."""
    hmac = [a for a in config.jwt_algorithms if a in HMAC_ALGORITHMS]
    asymmetric = [a for a in config.jwt_algorithms if a not in HMAC_ALGORITHMS]
    if (hmac and config.jwt_secret) or (asymmetric and config.jwt_public_key_file):
        return None
    if hmac:
        return f"JWT_SECRET is not set, and JWT_ALGORITHMS names {', '.join(hmac)} only"
    return "JWT_PUBLIC_KEY_FILE is not set"


def mint_token(
    config: Config,
    *,
    sub: str,
    org: str,
    scope: str = ORDER_WRITE_SCOPE,
    ttl: int = 3600,
    now: float | None = None,
) -> str:
    """A token signed with JWT_SECRET, for development and examples (`order-service token`)."""
    if not config.jwt_secret:
        raise ValueError("JWT_SECRET is not set; a token can only be minted with an HMAC secret")
    if ttl <= 0:
        raise ValueError("the token's lifetime (--ttl) must be a positive number of seconds")
    algorithm = next((a for a in config.jwt_algorithms if a in HMAC_ALGORITHMS), None)
    if algorithm is None:
        raise ValueError(
            "JWT_ALGORITHMS accepts no HMAC algorithm (HS256, HS384, HS512): the service "
            "would refuse a token minted with JWT_SECRET"
        )
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "org": org,
        "scope": scope,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    if config.jwt_issuer:
        claims["iss"] = config.jwt_issuer
    if config.jwt_audience:
        claims["aud"] = config.jwt_audience
    return jwt.encode(claims, config.jwt_secret, algorithm=algorithm)
