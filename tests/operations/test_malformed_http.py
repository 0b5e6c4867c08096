"""Requests aiohttp cannot parse never reach the middleware. A real `serve` process answers
them in the JSON error format, logs one warning without a traceback, and names itself
without the Python and aiohttp versions."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.faults.harness import INITIALS_PATH, initials_body, signed
from tests.operations.conftest import Launch

SECRET = b"eyJhbGciOiJIUzI1NiJ9.secret-claims"
MALFORMED = [
    (b"Content-Length: abc\r\n\r\n", "Invalid character in Content-Length"),
    (b"Bad Header\r\n\r\n", "Invalid header token"),
    (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", "Invalid character in chunk size"),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", "Duplicate Content-Length"),
    # The parser quotes the line it refused; a token in it must not be echoed or logged.
    (
        b"Authorization: Bearer " + SECRET + b"x" * 9000 + b"\r\n\r\n",
        "Got more than 8190 bytes when reading",
    ),
]


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends `raw` as it is and reads the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    found = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), found, body


def expected_error(path: bytes, reason: str, request_id: str) -> dict[str, object]:
    """The body of the 400 in the family of `path`: the flat Payway object under
    /external/, the merchant envelope elsewhere."""
    message = f"Malformed HTTP request: {reason}"
    if path.startswith(b"/external/"):
        return {"code": "malformed_http_request", "message": message}
    return {
        "error": {"code": "malformed_http_request", "message": message, "fields": {}},
        "meta": {"type": "error", "requestId": request_id},
    }


@pytest.mark.parametrize("path", [b"/api/v2/initials/url", b"/external/api/v1/me/order"])
@pytest.mark.parametrize(("tail", "reason"), MALFORMED)
async def test_unparseable_request_gets_a_json_error_and_a_warning(
    launch: Launch, tail: bytes, reason: str, path: bytes
) -> None:
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: test\r\n"
    status, found, body = await exchange(port, head + tail)

    assert status == 400
    assert found["content-type"].startswith("application/json")
    assert found["server"] == "order-service"
    assert orjson.loads(body) == expected_error(path, reason, found["x-request-id"])
    assert await service.stop() == 0

    events = [orjson.loads(line) for line in service.lines]
    logged = [e for e in events if e["event"] == "malformed_http_request"]
    assert len(logged) == 1
    assert logged[0]["level"] == "warning"
    assert logged[0]["request_id"] == found["x-request-id"]
    assert not [e for e in events if e["level"] == "error" or "exception" in e]
    assert SECRET not in body
    assert not [line for line in service.lines if SECRET.decode() in line]


@pytest.mark.parametrize(
    ("first", "then", "flat"),
    [
        (b"/api/v2/initials/url", b"/external/api/v1/me/order", True),
        (b"/external/api/v1/me/order", b"/api/v2/initials/url", False),
    ],
)
async def test_the_error_format_follows_each_request_on_a_kept_connection(
    launch: Launch, first: bytes, then: bytes, flat: bool
) -> None:
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Unsigned and without a token: a 401, and the connection is kept.
    writer.write(b"POST " + first + b" HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)

    writer.write(b"POST " + then + b" HTTP/1.1\r\nBad Header\r\n\r\n")
    response = await reader.read()
    writer.close()
    error = orjson.loads(response.partition(b"\r\n\r\n")[2])
    assert response.split(b" ", 2)[1] == b"400"
    code = error["code"] if flat else error["error"]["code"]
    assert code == "malformed_http_request"
    assert await service.stop() == 0


async def test_answers_name_the_service_not_its_versions(launch: Launch) -> None:
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    for path in (b"/health/live", b"/no/such/endpoint"):
        raw = b"GET " + path + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        _, found, _ = await exchange(port, raw)
        assert found["server"] == "order-service"
    assert await service.stop() == 0


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br", b"zstd"])
async def test_a_body_not_in_its_content_encoding_logs_no_traceback(
    launch: Launch, encoding: bytes
) -> None:
    # aiohttp keeps the decoding error and, reading the rest of the body after the answer
    # to keep the connection, raised it again: an error-level traceback per request.
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    raw = initials_body()
    lines = [b"POST " + INITIALS_PATH.encode() + b" HTTP/1.1", b"Host: test"]
    lines += [f"{name}: {value}".encode() for name, value in signed(raw).items()]
    lines += [b"Content-Encoding: " + encoding, b"Content-Length: %d" % len(raw)]
    status, found, body = await exchange(port, b"\r\n".join(lines) + b"\r\n\r\n" + raw)

    assert status == 400
    assert orjson.loads(body)["error"]["code"] == "invalid_content_encoding"
    assert found["connection"] == "close"
    assert await service.stop() == 0
    events = [orjson.loads(line) for line in service.lines]
    assert [e["status"] for e in events if e["event"] == "request"] == [400]
    assert not [e for e in events if e["level"] == "error" or "exception" in e]


@pytest.mark.parametrize("path", [INITIALS_PATH, "/external/api/v1/me/order"])
async def test_a_client_gone_before_its_body_is_in_is_a_499_not_a_database_outage(
    launch: Launch, customer_token: str, path: str
) -> None:
    # The body's read raised the connection's reset, which the middleware took for
    # PostgreSQL's: a 503 database_unavailable, counted where operators alert.
    service = await launch("serve", "--workers", "1")
    port = await service.serving_port()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n"
    head += f"Authorization: Bearer {customer_token}\r\n\r\n"
    writer.write(head.encode() + b'{"product"')
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    access = await service.wait_for_event(lambda e: e["event"] == "request")
    assert access["status"] == 499
    assert await service.stop() == 0
    assert not [e for e in service.events if e["event"] == "database_unavailable"]
    assert not [e for e in service.events if e["level"] == "error" or "exception" in e]


async def test_chunked_framing_broken_mid_body_is_a_400_at_once(launch: Launch) -> None:
    # aiohttp's parser drops the body it was filling when a later chunk line is broken,
    # without telling the handler, which waited for BODY_READ_TIMEOUT (a 408 after 30 s).
    service = await launch("serve", "--workers", "1", BODY_READ_TIMEOUT="60")
    port = await service.serving_port()
    raw = initials_body()
    lines = [b"POST " + INITIALS_PATH.encode() + b" HTTP/1.1", b"Host: test"]
    lines += [f"{name}: {value}".encode() for name, value in signed(raw).items()]
    lines += [b"Transfer-Encoding: chunked", b"Expect: 100-continue"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    # The interim answer comes once the handler reads the body: what follows is mid-body.
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
    writer.write(b"%x\r\n%s\r\nZZ\r\n" % (len(raw) - 1, raw[:-1]))
    async with asyncio.timeout(10):
        response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400"
    assert b"connection: close" in head.lower()
    assert orjson.loads(body)["error"]["code"] == "bad_request"
    assert await service.stop() == 0
    assert not [e for e in service.events if e["level"] == "error" or "exception" in e]
