"""The docs page's asset files: aiohttp's FileResponse decides 416 and 412 itself, after
the error middleware has run; they get the service's JSON error body all the same."""

from __future__ import annotations

from typing import Any

import pytest

from service.docs_assets import ASSETS, SWAGGER_UI_DIR
from service.middleware import REQUEST_ID_HEADER
from tests.operations.test_metrics import scrape, value

ASSET = "favicon-16x16.png"
ASSET_PATH = f"/docs/assets/{ASSET}"
SIZE = (SWAGGER_UI_DIR / ASSET).stat().st_size
# Ranges aiohttp's FileResponse answers with 416 rather than with a part of the file.
UNSATISFIABLE_RANGES = {
    "starts at the end": f"bytes={SIZE}-",
    "starts past the end": f"bytes={SIZE + 1000}-{SIZE + 2000}",
    "two ranges": "bytes=0-1,5-6",
    "not a byte range": "bytes=abc",
}


async def _assert_json_error(
    response: Any, status: int, code: str, *, head: bool = False
) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == "application/json"
    request_id = response.headers[REQUEST_ID_HEADER]
    if head:
        assert await response.read() == b""
        return {}
    body: dict[str, Any] = await response.json()
    assert int(response.headers["Content-Length"]) == len(await response.read())
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["meta"] == {"type": "error", "requestId": request_id}
    return body


async def _assert_unsatisfiable(response: Any, *, head: bool = False) -> None:
    body = await _assert_json_error(response, 416, "range_not_satisfiable", head=head)
    # RFC 9110 14.4: the 416 names the current length of the file.
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    if not head:
        assert body["error"]["message"] == (
            f"The requested range is not satisfiable; the file is {SIZE} bytes"
        )
        assert body["error"]["fields"] == {
            "headers.range": [f"must be one byte range starting below {SIZE}"]
        }


@pytest.mark.parametrize("value", UNSATISFIABLE_RANGES.values(), ids=UNSATISFIABLE_RANGES.keys())
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_an_unsatisfiable_range_is_a_json_416_with_the_files_length(
    client: Any, method: str, value: str
) -> None:
    response = await client.request(method, ASSET_PATH, headers={"Range": value})

    await _assert_unsatisfiable(response, head=method == "HEAD")


async def test_a_failed_if_match_is_a_json_412(client: Any) -> None:
    response = await client.get(ASSET_PATH, headers={"If-Match": '"not-this-file"'})

    body = await _assert_json_error(response, 412, "precondition_failed")
    assert body["error"]["fields"] == {}


async def test_a_satisfiable_range_and_a_revalidation_are_answered_as_before(
    client: Any,
) -> None:
    part = await client.get(ASSET_PATH, headers={"Range": "bytes=0-9"})
    assert part.status == 206
    assert part.content_type == ASSETS[ASSET]
    assert part.headers["Content-Range"] == f"bytes 0-9/{SIZE}"
    assert await part.read() == (SWAGGER_UI_DIR / ASSET).read_bytes()[:10]

    whole = await client.get(ASSET_PATH)
    assert whole.status == 200
    assert await whole.read() == (SWAGGER_UI_DIR / ASSET).read_bytes()

    unchanged = await client.get(ASSET_PATH, headers={"If-None-Match": whole.headers["ETag"]})
    assert unchanged.status == 304
    assert await unchanged.read() == b""


async def test_the_status_settled_in_prepare_is_the_one_counted(client: Any) -> None:
    before = await scrape(client)
    assert (await client.get(ASSET_PATH, headers={"Range": "bytes=0-9"})).status == 206
    assert (await client.get(ASSET_PATH, headers={"Range": f"bytes={SIZE}-"})).status == 416
    after = await scrape(client)

    def delta(status: str) -> float:
        labels = {"route": "/docs/assets/{filename}", "method": "GET", "status": status}
        name = "order_service_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert (delta("206"), delta("416"), delta("200")) == (1, 1, 0)
