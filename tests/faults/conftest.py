"""Fixtures of the fault suite: real service subprocesses, a proxy, an event consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from service.config import Config
from tests.conftest import AMQP_URL
from tests.faults.harness import EventConsumer
from tests.support.service_process import ServiceProcess, service_env

Launch = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
def config(base_config: Config) -> Config:
    """Each fault test publishes to an exchange of its own, so it counts only its events."""
    return replace(base_config, events_exchange=f"orders_faults_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def consumer(config: Config) -> AsyncIterator[EventConsumer]:
    # Bound before the first order, so no event is published while no queue is bound.
    events = await EventConsumer(AMQP_URL, config.events_exchange).start()
    yield events
    await events.close()


@pytest.fixture
async def launch(config: Config) -> AsyncIterator[Launch]:
    """launch(*args, **env_overrides) -> a started `order-service` subprocess; whatever
    is still running at the end of the test is killed."""
    started: list[ServiceProcess] = []

    async def _launch(*args: str, **env: Any) -> ServiceProcess:
        process = ServiceProcess(args, service_env(config, **{k: str(v) for k, v in env.items()}))
        started.append(await process.start())
        return process

    yield _launch
    for process in started:
        await process.kill()


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Prints the figures of a fault even when pytest captures output."""
    with capsys.disabled():
        print("\n" + line)
