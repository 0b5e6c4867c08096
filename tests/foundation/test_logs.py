"""Log lines: a value orjson cannot encode still gives one JSON line."""

from __future__ import annotations

import json

import pytest

from service.logs import _orjson_dumps, redact_secrets


def test_a_lone_surrogate_is_escaped_not_an_error() -> None:
    # What aiohttp makes of a header's undecodable bytes (surrogateescape).
    line = _orjson_dumps({"event": "request", "user_agent": "r\udcff\udcfeq", "n": 1})
    assert json.loads(line) == {"event": "request", "user_agent": "r\udcff\udcfeq", "n": 1}
    assert "\n" not in line


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("amqp://svc:secret@rabbit:5672/", "amqp://svc:***@rabbit:5672/"),
        ("amqp://svc:p@ssw0rd@rabbit:5672/vhost", "amqp://svc:***@rabbit:5672/vhost"),
        ("amqp://:onlypass@h/", "amqp://:***@h/"),
        (
            "failed: 'postgresql://app:pw@db:5432/orders' down",
            "failed: 'postgresql://app:***@db:5432/orders' down",
        ),
        ("http://host:8080/path?a=b@c", "http://host:8080/path?a=b@c"),
        ("amqp://guest@rabbit/", "amqp://guest@rabbit/"),
    ],
)
def test_a_password_in_a_url_is_masked_whatever_it_holds(logged: str, shown: str) -> None:
    assert redact_secrets(None, "info", {"event": "x", "error": logged})["error"] == shown
