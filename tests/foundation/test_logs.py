"""Log lines: a value orjson cannot encode still gives one JSON line."""

from __future__ import annotations

import json

from service.logs import _orjson_dumps


def test_a_lone_surrogate_is_escaped_not_an_error() -> None:
    # What aiohttp makes of a header's undecodable bytes (surrogateescape).
    line = _orjson_dumps({"event": "request", "user_agent": "r\udcff\udcfeq", "n": 1})
    assert json.loads(line) == {"event": "request", "user_agent": "r\udcff\udcfeq", "n": 1}
    assert "\n" not in line
