"""Fixtures of the operations tests: signed and Bearer requests, and subprocess services."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import jwt
import pytest

from service.config import Config
from tests.support.service_process import ServiceProcess, service_env

Launch = Callable[..., Awaitable[ServiceProcess]]
ME_ORDER_PATH = "/external/api/v1/me/order"
ME_ORDER_BODY = {
    "product_code": "adeprimo_digital",
    "period_id": "5cb804811d41c82b5c518ea8",
    "start_date": "2019-05-01T00:00:00+00:00",
    "browser_ip": "127.0.0.1",
    "language": "sv-SE",
    "user_agent": "Mozilla/5.0",
    "receipt_url": "https://domain.tld/receipt/585a4768edce2c5e6f000001",
}


@pytest.fixture
def config(base_config: Config) -> Config:
    return replace(base_config, events_exchange=f"orders_ops_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def customer_token(config: Config) -> str:
    now = int(time.time())
    claims = {
        "sub": f"customer-{uuid.uuid4().hex[:12]}",
        "org": "adeprimo",
        "scope": "openid /external/me/order/w",
        "iat": now,
        "exp": now + 300,
    }
    assert config.jwt_secret is not None
    return jwt.encode(claims, config.jwt_secret, "HS256")


@pytest.fixture
async def launch(config: Config) -> AsyncIterator[Launch]:
    """launch(*args, **env_overrides) -> a started `order-service` subprocess."""
    started: list[ServiceProcess] = []

    async def _launch(*args: str, **env: Any) -> ServiceProcess:
        process = ServiceProcess(args, service_env(config, **{k: str(v) for k, v in env.items()}))
        started.append(await process.start())
        return process

    yield _launch
    for process in started:
        await process.kill()
