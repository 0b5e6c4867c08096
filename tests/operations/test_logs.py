"""Logs of a real service process: JSON lines, the access line's fields, and no secret in
any line."""

from __future__ import annotations

import uuid
from datetime import datetime

import aiohttp
import orjson

from service.auth.signing import signed_headers
from service.config import Config
from tests.faults.harness import EYEZY_KEY, INITIALS_PATH, initials_body, signed
from tests.operations.conftest import ME_ORDER_BODY, ME_ORDER_PATH, Launch

ACCESS_FIELDS = {"request_id", "method", "route", "status", "duration_ms", "merchant", "order_id"}


async def test_log_lines_are_json_and_carry_no_secret(
    launch: Launch, config: Config, customer_token: str
) -> None:
    db_password = f"DbPw-{uuid.uuid4().hex}"
    # Trust authentication ignores the password; it is there to be kept out of the logs.
    url = config.database_url.replace(
        "postgresql://postgres@", f"postgresql://postgres:{db_password}@"
    )
    service = await launch("serve", "--workers", "1", DATABASE_URL=url, LOG_LEVEL="debug")
    base_url = f"http://127.0.0.1:{await service.serving_port()}"

    wrong_secret = f"sk_wrong_{uuid.uuid4().hex}"
    garbage_token = f"eyJhbGciOiJIUzI1NiJ9.{uuid.uuid4().hex}.sig"
    secrets = [db_password, EYEZY_KEY[1], wrong_secret, customer_token, garbage_token]
    assert config.jwt_secret is not None
    secrets.append(config.jwt_secret)
    async with aiohttp.ClientSession() as session:
        raw = initials_body()
        headers = signed(raw)
        secrets.append(headers["x-token"])
        async with session.post(base_url + INITIALS_PATH, data=raw, headers=headers) as r:
            assert r.status == 200
            order_id = (await r.json())["data"]["url"].rsplit("/", 1)[1]

        path = f"/api/v3/orders/{order_id}"
        headers = signed_headers(*EYEZY_KEY, "GET", path, b"")
        secrets.append(headers["x-token"])
        async with session.get(base_url + path, headers=headers) as r:
            assert r.status == 200

        headers = signed_headers(EYEZY_KEY[0], wrong_secret, "POST", INITIALS_PATH, raw)
        headers["Content-Type"] = "application/json"
        secrets.append(headers["x-token"])
        async with session.post(base_url + INITIALS_PATH, data=raw, headers=headers) as r:
            assert r.status == 401

        for token, status in ((customer_token, 200), (garbage_token, 401)):
            bearer = {"Authorization": f"Bearer {token}"}
            async with session.post(
                base_url + ME_ORDER_PATH, json=ME_ORDER_BODY, headers=bearer
            ) as r:
                assert r.status == status, await r.text()
    assert await service.stop() == 0

    access = []
    for line in service.lines:
        event = orjson.loads(line)  # every line is one JSON object
        assert {"timestamp", "level", "event"} <= event.keys(), line
        assert event["timestamp"].endswith("Z"), line
        datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        if event["event"] == "request":
            access.append(event)
        for secret in secrets:
            assert secret not in line, f"a secret leaked into: {line}"
    assert len(access) == 5
    assert all(a.keys() >= ACCESS_FIELDS for a in access)
    created = next(a for a in access if a["route"] == INITIALS_PATH and a["status"] == 200)
    assert created["merchant"] == "eyezy" and created["order_id"] == order_id
    read = next(a for a in access if a["route"] == "/api/v3/orders/{orderId}")
    assert read["merchant"] == "eyezy"
    assert len({a["request_id"] for a in access}) == 5
    # The DSN is logged, with the password masked.
    assert any(":***@" in line for line in service.lines)
