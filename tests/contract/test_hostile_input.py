"""Input that once reached the database or a library unchecked: odd header bytes, NUL
characters, numbers too large to keep, non-RFC 3339 dates, non-ASCII digits. Each gets a
clear error in its family's format, never a 500."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from dataclasses import replace
from typing import Any

import brotli
import jwt
import orjson
import pytest
from backports import zstd

from service.auth.signing import signed_headers
from service.config import Config
from tests.conftest import EYEZY_KEY

INITIALS_PATH = "/api/v2/initials/url"
ME_ORDER_PATH = "/external/api/v1/me/order"
ME_ORDER_BODY = {
    "product_code": "adeprimo_digital",
    "period_id": "5cb804811d41c82b5c518ea8",
    "browser_ip": "127.0.0.1",
    "language": "sv-SE",
    "user_agent": "Mozilla/5.0",
    "receipt_url": "https://domain.tld/receipt/1",
}


async def raw_request(
    client: Any, method: str, path: str, headers: dict[str, bytes], body: bytes
) -> tuple[int, dict[str, Any]]:
    """Sends header values as raw bytes (an HTTP client would refuse to encode them)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(payload)


def signed_raw(body: bytes, **override: bytes) -> dict[str, bytes]:
    headers = {
        k: v.encode() for k, v in signed_headers(*EYEZY_KEY, "POST", INITIALS_PATH, body).items()
    }
    headers["Content-Type"] = b"application/json"
    headers.update(override)
    return headers


def customer_token(config: Config, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "customer-hostile", "org": "adeprimo", "exp": now + 300}
    payload["scope"] = "/external/me/order/w"
    payload.update(claims)
    return jwt.encode(payload, config.jwt_secret, "HS256")


async def test_non_ascii_x_token_is_an_invalid_signature(client: Any) -> None:
    body = orjson.dumps({"product": {"code": "premium_1m"}})
    status, error = await raw_request(
        client, "POST", INITIALS_PATH, signed_raw(body, **{"x-token": b"\xff\xfe"}), body
    )
    assert status == 401
    assert error["error"]["code"] == "invalid_signature"


async def test_odd_bytes_in_x_source_are_a_header_error(client: Any) -> None:
    body = orjson.dumps({"product": {"code": "premium_1m"}})
    status, error = await raw_request(
        client, "POST", INITIALS_PATH, signed_raw(body, **{"x-source": b"sh\xffop"}), body
    )
    assert status == 422
    assert error["error"]["code"] == "invalid_headers"
    assert "headers.x-source" in error["error"]["fields"]


async def test_undecodable_x_request_id_is_replaced_not_a_500(client: Any) -> None:
    odd_id = {"X-Request-ID": b"r\xff\xfeq"}
    body = orjson.dumps({"product": {"code": "premium_1m"}, "sequence": "odd-request-id"})
    status, answer = await raw_request(
        client, "POST", INITIALS_PATH, signed_raw(body, **odd_id), body
    )
    assert status == 200, answer
    refused = orjson.dumps({"product": {}})
    status, error = await raw_request(
        client, "POST", INITIALS_PATH, signed_raw(refused, **odd_id), refused
    )
    assert status == 422
    assert re.fullmatch(r"[0-9a-f]{32}", error["meta"]["requestId"])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("req_1-A.b:c", True), ("x" * 200, True), ("x" * 201, False), ("has space", False)],
)
async def test_a_callers_request_id_is_kept_only_if_printable_and_short(
    client: Any, sent: str, kept: bool
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    assert (echoed == sent) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def compressed(encoding: str, body: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "br":
        return brotli.compress(body)
    return zstd.compress(body)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
async def test_a_compressed_body_is_signed_and_read_decoded(client: Any, encoding: str) -> None:
    body = orjson.dumps({"product": {"code": "premium_1m"}, "sequence": f"sent-as-{encoding}"})
    headers = signed_raw(body, **{"Content-Encoding": encoding.encode()})
    status, answer = await raw_request(
        client, "POST", INITIALS_PATH, headers, compressed(encoding, body)
    )
    assert status == 200, answer
    assert answer["data"]["params"]["sequence"] == f"sent-as-{encoding}"


async def test_a_body_not_in_its_content_encoding_is_a_400_in_each_format(
    client: Any, config: Config
) -> None:
    body = orjson.dumps({"product": {"code": "premium_1m"}})
    headers = signed_raw(body, **{"Content-Encoding": b"gzip"})
    status, error = await raw_request(client, "POST", INITIALS_PATH, headers, body)
    assert (status, error["error"]["code"]) == (400, "invalid_content_encoding")

    me_order = {
        "Authorization": f"Bearer {customer_token(config)}".encode(),
        "Content-Type": b"application/json",
        "Content-Encoding": b"deflate",
    }
    status, error = await raw_request(client, "POST", ME_ORDER_PATH, me_order, b"xx")
    assert (status, error["code"]) == (400, "invalid_content_encoding")


async def test_two_content_encoding_headers_are_a_list_of_codings_and_refused(
    client: Any,
) -> None:
    # aiohttp would decode by the last header while the first said identity.
    body = orjson.dumps({"product": {"code": "premium_1m"}})
    headers = signed_raw(body, **{"Content-Encoding": b"identity", "content-encoding": b"gzip"})
    status, error = await raw_request(client, "POST", INITIALS_PATH, headers, gzip.compress(body))
    assert (status, error["error"]["code"]) == (415, "unsupported_content_encoding")


@pytest.mark.parametrize("encoding", [b"zstd-foo", b"x-gzip", b"gzip, br", b"compress"])
async def test_a_content_encoding_the_service_cannot_decode_is_a_415(
    client: Any, encoding: bytes
) -> None:
    # aiohttp would pass such a body on undecoded, as if it had no encoding at all.
    body = orjson.dumps({"product": {"code": "premium_1m"}})
    headers = signed_raw(body, **{"Content-Encoding": encoding})
    status, error = await raw_request(client, "POST", INITIALS_PATH, headers, body)
    assert (status, error["error"]["code"]) == (415, "unsupported_content_encoding")


@pytest.mark.parametrize(("charset", "status"), [("UTF-8", 200), ("latin-1", 400)])
async def test_a_body_declared_in_another_charset_than_utf_8_is_refused(
    client: Any, config: Config, charset: str, status: int
) -> None:
    response = await client.post(
        ME_ORDER_PATH,
        data=orjson.dumps(ME_ORDER_BODY),
        headers={
            "Authorization": f"Bearer {customer_token(config)}",
            "Content-Type": f"application/json; charset={charset}",
        },
    )
    assert response.status == status, await response.text()
    if status == 400:
        assert (await response.json())["code"] == "invalid_content_type_error"


async def test_a_key_given_twice_is_refused_not_last_one_wins(client: Any, config: Config) -> None:
    # Which discount would the merchant's proxy have logged?
    body = b'{"product": {"code": "premium_1m"}, "discount": 90, "discount": null}'
    status, error = await raw_request(client, "POST", INITIALS_PATH, signed_raw(body), body)
    assert status == 400
    assert error["error"]["code"] == "json_parser_error"
    assert (
        error["error"]["message"] == "The request body gives the key 'discount' twice in one object"
    )

    nested = orjson.dumps(ME_ORDER_BODY)[:-1] + b', "address": {"city": "A", "city": "B"}}'
    response = await client.post(
        ME_ORDER_PATH,
        data=nested,
        headers={
            "Authorization": f"Bearer {customer_token(config)}",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 400
    assert (await response.json())["code"] == "json_parser_error"


async def test_a_body_nested_as_deep_as_orjson_allows_is_a_400(client: Any) -> None:
    depth = 1000  # within orjson's 1024 levels, past the standard library's recursion
    body = (
        b'{"product": {"code": "premium_1m"}, "metaData": {"k": '
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )
    status, error = await raw_request(client, "POST", INITIALS_PATH, signed_raw(body), body)
    # Python 3.11's scanner gives up (400); a later Python's reads it and the flat
    # metaData refuses it (422). Either way a clear error, never a 500.
    assert (status, error["error"]["code"]) in {
        (400, "json_parser_error"),
        (422, "validation_error"),
    }


async def test_non_ascii_bearer_token_is_unauthorized(client: Any) -> None:
    body = orjson.dumps(ME_ORDER_BODY)
    headers = {"Authorization": b"Bearer \xff\xfe", "Content-Type": b"application/json"}
    status, error = await raw_request(client, "POST", ME_ORDER_PATH, headers, body)
    assert status == 401
    assert error["code"] == "unauthorized"


async def test_nul_in_a_payway_field_is_an_invalid_parameter(client: Any, config: Config) -> None:
    response = await client.post(
        ME_ORDER_PATH,
        json={**ME_ORDER_BODY, "user_agent": "Mozilla\u0000"},
        headers={"Authorization": f"Bearer {customer_token(config)}"},
    )
    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_parameter",
        "field": "user_agent",
        "message": "Parameter must not contain NUL characters",
    }


async def test_nul_in_the_token_subject_is_unauthorized(client: Any, config: Config) -> None:
    token = customer_token(config, sub="cust\u0000omer")
    response = await client.post(
        ME_ORDER_PATH, json=ME_ORDER_BODY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 401
    assert (await response.json())["code"] == "unauthorized"


async def test_non_ascii_digits_do_not_pass_for_a_period_id(client: Any, config: Config) -> None:
    response = await client.post(
        ME_ORDER_PATH,
        json={**ME_ORDER_BODY, "period_id": "\u0660" * 24},
        headers={"Authorization": f"Bearer {customer_token(config)}"},
    )
    assert response.status == 400
    assert (await response.json())["message"] == "Parameter must match format (/^[a-f\\d]{24}$/)"


async def test_metadata_integer_past_64_bits_is_refused(client: Any, sign: Any) -> None:
    raw = b'{"product": {"code": "premium_1m"}, "metaData": {"a": 123456789012345678901234567890}}'
    body, headers = sign(INITIALS_PATH, raw)
    headers["Content-Type"] = "application/json"
    response = await client.post(INITIALS_PATH, data=body, headers=headers)
    assert response.status == 422
    [message] = (await response.json())["error"]["fields"]["metaData.a"]
    assert "up to 64 bits" in message


async def test_x_date_in_another_iso_8601_form_is_refused(client: Any, sign: Any) -> None:
    body, headers = sign(INITIALS_PATH, {"product": {"code": "premium_1m"}})
    headers["x-date"] = "2026-W48-2T01:05:00Z"
    response = await client.post(INITIALS_PATH, data=body, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_x_date"


async def test_identical_requests_signed_in_the_same_second_are_two_orders(
    client: Any, sign: Any
) -> None:
    # Two buyers of the same product with the same (minimal) body: each signature carries
    # its own x-date to the microsecond, so neither is taken for a replay.
    responses = []
    for _ in range(2):
        body, headers = sign(INITIALS_PATH, {"product": {"code": "premium_1m"}})
        responses.append(await client.post(INITIALS_PATH, data=body, headers=headers))
    assert [r.status for r in responses] == [200, 200]


async def send_part_of_the_body(
    client: Any, path: str, headers: dict[str, bytes], body: bytes
) -> tuple[int, bytes, dict[str, Any]]:
    """Sends the headers for all of `body` but only its first half, then reads the
    answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: test"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body[: len(body) // 2])
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"Content-Length: (\d+)", head)
    assert length is not None
    payload = await reader.readexactly(int(length[1]))
    writer.close()
    return int(head.split(b" ", 2)[1]), head, orjson.loads(payload)


async def test_a_body_that_stops_arriving_is_a_408_and_the_connection_closes(
    aiohttp_client: Any, config: Config
) -> None:
    from service.app import create_app

    client = await aiohttp_client(create_app(replace(config, body_read_timeout=0.2)))
    body = orjson.dumps({"product": {"code": "premium_1m"}, "sequence": "x" * 200})
    started = time.monotonic()
    status, head, error = await send_part_of_the_body(client, INITIALS_PATH, signed_raw(body), body)
    assert status == 408
    assert error["error"]["code"] == "request_timeout"
    assert error["error"]["message"] == "The request body did not arrive within 0.2 s"
    assert b"X-Request-ID: " in head
    # The rest of the body would be read as the next request: the connection ends.
    assert b"Connection: close" in head
    assert time.monotonic() - started < 5

    me_order = {
        "Authorization": f"Bearer {customer_token(config)}".encode(),
        "Content-Type": b"application/json",
    }
    status, _, error = await send_part_of_the_body(
        client, ME_ORDER_PATH, me_order, orjson.dumps(ME_ORDER_BODY)
    )
    assert status == 408
    assert error == {
        "code": "request_timeout",
        "message": "The request body did not arrive within 0.2 s",
    }


async def test_a_zstd_body_needing_a_window_over_8_mib_is_refused_not_decoded(
    client: Any,
) -> None:
    # RFC 9659's limit. A 6 KB frame declaring zstd's largest window made the decoder
    # hold 128 MiB per connection; with the window bounded it is refused before that.
    compressor = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 27})
    bomb = compressor.compress(b'{"a": "') + compressor.compress(b"x" * (64 << 20))
    bomb += compressor.flush()
    assert len(bomb) < 8000
    headers = signed_raw(bomb, **{"Content-Encoding": b"zstd"})
    status, error = await raw_request(client, "POST", INITIALS_PATH, headers, bomb)
    # Unbounded, it would decode until the body limit: 413 payload_too_large.
    assert (status, error["error"]["code"]) == (400, "invalid_content_encoding")

    # An RFC-conformant window still decodes.
    compressor = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 23})
    body = orjson.dumps({"product": {"code": "premium_1m"}, "sequence": "window-8-mib"})
    streamed = compressor.compress(body) + compressor.flush()
    headers = signed_raw(body, **{"Content-Encoding": b"zstd"})
    status, answer = await raw_request(client, "POST", INITIALS_PATH, headers, streamed)
    assert status == 200, answer


async def test_a_long_unknown_field_name_is_cut_short_in_the_answer(
    client: Any, config: Config
) -> None:
    name = "k" * 10_000
    shown = "k" * 64 + "..."
    body = orjson.dumps({"product": {"code": "premium_1m"}, name: 1})
    status, error = await raw_request(client, "POST", INITIALS_PATH, signed_raw(body), body)
    assert status == 422
    assert error["error"]["fields"] == {shown: ["Unknown field."]}
    assert name not in error["error"]["message"]

    response = await client.post(
        ME_ORDER_PATH,
        json={**ME_ORDER_BODY, "address": {"city": "Lund", name: 1}},
        headers={"Authorization": f"Bearer {customer_token(config)}"},
    )
    assert response.status == 400
    assert await response.json() == {
        "code": "unknown_parameter",
        "field": f"address.{shown}",
        "message": f"Unknown parameter address.{shown}",
    }
