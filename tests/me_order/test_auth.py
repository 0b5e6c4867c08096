"""Bearer token checks: 401 unauthorized (with a Bearer challenge) and 403 insufficient_scope,
HS256 with JWT_SECRET and RS256/ES256 with a public key file."""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from multidict import CIMultiDict

from service.app import create_app
from service.auth.bearer import VerifiedTokens, mint_token, unverifiable_reason
from service.cli import main as cli_main
from service.config import Config
from service.errors import Unauthorized
from tests.me_order.conftest import ME_ORDER_PATH, Token, bearer, order_body


async def post(client: Any, headers: dict[str, str], body: Any = None) -> Any:
    raw = orjson.dumps(order_body() if body is None else body)
    return await client.post(ME_ORDER_PATH, data=raw, headers=headers)


async def assert_unauthorized(response: Any, message: str, challenge: str) -> None:
    assert response.status == 401
    assert await response.json() == {"code": "unauthorized", "message": message}
    assert response.headers["WWW-Authenticate"] == challenge


async def test_missing_token(client: Any) -> None:
    response = await post(client, {"Content-Type": "application/json"})
    await assert_unauthorized(
        response, "Missing Bearer token in the Authorization header", "Bearer"
    )


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token"])
async def test_not_a_bearer_header(client: Any, header: str) -> None:
    response = await post(client, {"Authorization": header, "Content-Type": "application/json"})
    await assert_unauthorized(
        response,
        "The Authorization header must be 'Bearer <token>'",
        'Bearer error="invalid_token"',
    )


async def test_two_authorization_headers_are_refused(client: Any, token: Token) -> None:
    # Even with the valid one first: a proxy in front may have read the other.
    valid = bearer(token())["Authorization"]
    for first, second in ((valid, "Bearer garbage"), (valid, valid)):
        headers = CIMultiDict({"Content-Type": "application/json", "Authorization": first})
        headers.add("Authorization", second)
        response = await client.post(
            ME_ORDER_PATH, data=orjson.dumps(order_body()), headers=headers
        )
        await assert_unauthorized(
            response,
            "Send one Authorization header, not several",
            'Bearer error="invalid_token"',
        )


@pytest.mark.parametrize("raw", ["abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"])
async def test_malformed_token(client: Any, raw: str) -> None:
    response = await post(client, bearer(raw))
    assert response.status == 401
    assert (await response.json())["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_expired_token(client: Any, token: Token, config: Config) -> None:
    past = int(time.time()) - config.jwt_leeway_seconds - 60
    response = await post(client, bearer(token(iat=past - 300, exp=past)))
    await assert_unauthorized(response, "The token has expired", 'Bearer error="invalid_token"')


async def test_expired_within_leeway_is_accepted(client: Any, token: Token) -> None:
    response = await post(client, bearer(token(exp=int(time.time()) - 5)))
    assert response.status == 200, await response.text()


async def test_wrong_signature(client: Any, token: Token) -> None:
    response = await post(client, bearer(token(key="another-secret-0123456789abcdefghij")))
    await assert_unauthorized(
        response, "The token's signature is not valid", 'Bearer error="invalid_token"'
    )


async def test_tampered_claims(client: Any, token: Token) -> None:
    header, _, signature = token().split(".")
    forged_claims = jwt.utils.base64url_encode(
        orjson.dumps({"sub": "someone-else", "org": "adeprimo", "exp": int(time.time()) + 60})
    ).decode()
    response = await post(client, bearer(f"{header}.{forged_claims}.{signature}"))
    assert response.status == 401


async def test_token_without_expiry(client: Any, token: Token) -> None:
    response = await post(client, bearer(token(exp=None)))
    await assert_unauthorized(
        response,
        'The token is not valid: Token is missing the "exp" claim',
        'Bearer error="invalid_token"',
    )


async def test_a_token_pyjwt_cannot_decode_is_malformed_in_our_words(
    client: Any, config: Config
) -> None:
    # An unencoded payload (RFC 7797): PyJWT's message would speak of its own arguments.
    claims = {"sub": "x", "org": "adeprimo", "exp": int(time.time()) + 60}
    detached = jwt.encode(claims, config.jwt_secret, "HS256", headers={"b64": False})
    response = await post(client, bearer(detached))
    await assert_unauthorized(response, "The token is malformed", 'Bearer error="invalid_token"')


async def test_unsigned_token(client: Any, token: Token) -> None:
    unsigned = jwt.encode(
        {"sub": "x", "org": "adeprimo", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    response = await post(client, bearer(unsigned))
    await assert_unauthorized(
        response,
        "The token is signed with an algorithm that is not accepted",
        'Bearer error="invalid_token"',
    )


async def test_unknown_org(client: Any, token: Token) -> None:
    response = await post(client, bearer(token(org="nosuchmerchant")))
    await assert_unauthorized(
        response,
        "The token's org claim does not name a known merchant",
        'Bearer error="invalid_token"',
    )


@pytest.mark.parametrize("sub", [None, "", 42, "   ", "c3" + " " * 300, "x" * 256])
async def test_bad_subject(client: Any, token: Token, sub: Any) -> None:
    response = await post(client, bearer(token(sub=sub)))
    assert response.status == 401
    assert (await response.json())["code"] == "unauthorized"


async def test_the_longest_subject_is_an_account(client: Any, token: Token) -> None:
    response = await post(client, bearer(token(sub="x" * 255)))
    assert response.status == 200, await response.text()


async def test_an_expiry_given_as_a_string_is_refused_every_time(client: Any, token: Token) -> None:
    # PyJWT accepts a numeric string; sent twice, the second use reads it from memory.
    headers = bearer(token(exp=str(int(time.time()) + 300)))
    for _ in range(2):
        response = await post(client, headers)
        await assert_unauthorized(
            response,
            "The token's exp claim must be a number (NumericDate)",
            'Bearer error="invalid_token"',
        )


@pytest.mark.parametrize("scope", [None, "", "openid /external/me/order/r", "/external/me/order"])
async def test_missing_scope(client: Any, token: Token, scope: str | None) -> None:
    response = await post(client, bearer(token(scope=scope)))
    assert response.status == 403
    assert await response.json() == {
        "code": "insufficient_scope",
        "message": "The token does not grant the scope /external/me/order/w",
    }
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="/external/me/order/w"'
    )


async def test_token_is_checked_before_the_body(client: Any) -> None:
    response = await client.post(ME_ORDER_PATH, data=b"{", headers={"Content-Type": "text/plain"})
    assert response.status == 401


async def test_issuer_and_audience_when_configured(
    aiohttp_client: Any, config: Config, token: Token
) -> None:
    client = await aiohttp_client(
        create_app(replace(config, jwt_issuer="https://id.example", jwt_audience="payway"))
    )
    good = token(iss="https://id.example", aud="payway")
    assert (await post(client, bearer(good))).status == 200
    for bad in (
        token(aud="payway"),
        token(iss="https://id.example"),
        token(iss="https://evil.example", aud="payway"),
        token(iss="https://id.example", aud="other"),
    ):
        response = await post(client, bearer(bad))
        assert response.status == 401
        assert (await response.json())["code"] == "unauthorized"


def _write_public_key(private_key: Any, path: Path) -> Path:
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def hmac_token(secret: bytes, account: str) -> str:
    """An HS256 token made by hand: PyJWT refuses to use a PEM key as an HMAC secret."""
    encode = jwt.utils.base64url_encode
    header = encode(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    claims = {"sub": account, "org": "adeprimo", "scope": "/external/me/order/w"}
    payload = encode(orjson.dumps({**claims, "exp": int(time.time()) + 60}))
    signature = encode(hmac.digest(secret, header + b"." + payload, "sha256"))
    return b".".join((header, payload, signature)).decode()


async def test_rs256_with_a_public_key_file(
    aiohttp_client: Any,
    config: Config,
    token: Token,
    tmp_path: Path,
    rsa_key: Any,
    account: str,
) -> None:
    key_file = _write_public_key(rsa_key, tmp_path / "jwt.pem")
    rs_config = replace(
        config, jwt_secret=None, jwt_public_key_file=key_file, jwt_algorithms=("RS256", "ES256")
    )
    client = await aiohttp_client(create_app(rs_config))

    response = await post(client, bearer(token(key=rsa_key, algorithm="RS256")))
    assert response.status == 200, await response.text()

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = await post(client, bearer(token(key=other_key, algorithm="RS256")))
    assert response.status == 401

    # An HS256 token is refused, also one whose HMAC key is the public key file itself
    # (the classic algorithm-confusion forgery).
    response = await post(client, bearer(token()))
    assert response.status == 401
    response = await post(client, bearer(hmac_token(key_file.read_bytes(), account)))
    assert response.status == 401


async def test_es256_with_a_public_key_file(
    aiohttp_client: Any, config: Config, token: Token, tmp_path: Path
) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    key_file = _write_public_key(ec_key, tmp_path / "jwt-ec.pem")
    es_config = replace(config, jwt_public_key_file=key_file, jwt_algorithms=("ES256", "HS256"))
    client = await aiohttp_client(create_app(es_config))
    assert (await post(client, bearer(token(key=ec_key, algorithm="ES256")))).status == 200
    # both configured: the HMAC secret still verifies HS256 tokens
    assert (await post(client, bearer(token()))).status == 200


def test_mint_token_needs_a_secret(config: Config) -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        mint_token(replace(config, jwt_secret=None), sub="c", org="adeprimo")


async def test_minted_token_is_accepted(client: Any, config: Config, account: str) -> None:
    minted = mint_token(config, sub=account, org="adeprimo")
    claims = jwt.decode(minted, config.jwt_secret, algorithms=["HS256"])
    assert claims["scope"] == "/external/me/order/w"
    assert claims["exp"] - claims["iat"] == 3600
    response = await post(client, bearer(minted))
    assert response.status == 200, await response.text()


def test_cli_token_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config: Config
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789abcdefgh")
    assert cli_main(["token", "--sub", "customer-1", "--org", "adeprimo", "--ttl", "60"]) == 0
    minted = capsys.readouterr().out.strip()
    claims = jwt.decode(minted, "cli-test-secret-0123456789abcdefgh", algorithms=["HS256"])
    assert (claims["sub"], claims["org"]) == ("customer-1", "adeprimo")

    monkeypatch.delenv("JWT_SECRET")
    assert cli_main(["token", "--sub", "customer-1", "--org", "adeprimo"]) == 2
    assert "JWT_SECRET" in capsys.readouterr().err


def test_cli_token_refuses_to_mint_what_the_service_would_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Only RS256 accepted: an HS256 token minted with JWT_SECRET would get 401 every time.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "jwt.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-0123456789abcdefgh")
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256")
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(public))
    assert cli_main(["token", "--sub", "customer-1", "--org", "adeprimo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "accepts no HMAC algorithm" in captured.err


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"jwt_secret": None}, "JWT_SECRET is not set"),
        ({"jwt_secret": None, "jwt_algorithms": ("RS256",)}, "JWT_PUBLIC_KEY_FILE is not set"),
        ({}, None),
    ],
)
def test_a_configuration_that_can_verify_no_token_is_named(
    config: Config, changes: dict[str, Any], reason: str | None
) -> None:
    found = unverifiable_reason(replace(config, **changes))
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


class TestVerifiedTokens:
    """A token is verified once per process; its expiry is checked on every use."""

    def test_a_remembered_token_still_expires(
        self, config: Config, token: Token, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tokens = VerifiedTokens(config)
        issued = int(time.time())
        raw = token(iat=issued, exp=issued + 60)
        assert tokens.claims(raw)["exp"] == issued + 60
        assert len(tokens) == 1
        later = issued + 60 + config.jwt_leeway_seconds + 1
        monkeypatch.setattr("service.auth.bearer.time.time", lambda: later)
        with pytest.raises(Unauthorized, match="The token has expired"):
            tokens.claims(raw)
        assert len(tokens) == 0

    def test_invalid_tokens_are_not_remembered(self, config: Config, token: Token) -> None:
        tokens = VerifiedTokens(config)
        for raw in (token(key="another-secret-of-enough-length-0123456789"), "a.b.c"):
            with pytest.raises(Unauthorized):
                tokens.claims(raw)
        assert len(tokens) == 0

    def test_the_least_recently_used_is_forgotten_first(self, config: Config, token: Token) -> None:
        tokens = VerifiedTokens(config, size=2)
        first, second, third = (token(sub=f"customer-{n}") for n in range(3))
        tokens.claims(first)
        tokens.claims(second)
        tokens.claims(first)  # now the most recently used
        tokens.claims(third)
        assert len(tokens) == 2
        assert tokens.claims(first)["sub"] == "customer-0"  # still remembered
        assert tokens.claims(second)["sub"] == "customer-1"  # verified again, evicting third
        assert len(tokens) == 2

    async def test_one_token_serves_a_customer_s_orders(self, client: Any, token: Token) -> None:
        headers = bearer(token())
        for _ in range(3):
            response = await post(client, headers)
            assert response.status == 200, await response.text()
