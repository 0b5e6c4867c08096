"""The container image's HEALTHCHECK (`python -m service.healthcheck`): one check for both
of the image's commands, `serve` on PORT and `relay` on RELAY_HTTP_PORT."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator

import pytest

from service.config import Config
from service.healthcheck import probed_host, probed_ports
from tests.support.service_process import ServiceProcess, service_env


async def healthcheck(**env: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.healthcheck", env={**os.environ, **env}
    )
    return await asyncio.wait_for(process.wait(), 30)


@pytest.fixture
def refused_port() -> Iterator[str]:
    """A port bound and never listened on: a connection to it is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield str(bound.getsockname()[1])


async def test_a_serving_service_is_healthy_on_port(config: Config, refused_port: str) -> None:
    process = await ServiceProcess(["serve"], service_env(config, RELAY_HTTP_PORT="off")).start()
    try:
        port = str(await process.serving_port())
        assert await healthcheck(PORT=port, RELAY_HTTP_PORT="off") == 0
        assert await healthcheck(PORT=refused_port, RELAY_HTTP_PORT="off") == 1
    finally:
        await process.kill()


async def test_a_relay_is_healthy_on_its_http_port(config: Config, refused_port: str) -> None:
    # The relay does not listen on PORT: the check goes on to RELAY_HTTP_PORT.
    process = await ServiceProcess(["relay"], service_env(config)).start()
    try:
        relay_port = str(await process.relay_http_port())
        assert await healthcheck(PORT=refused_port, RELAY_HTTP_PORT=relay_port) == 0
        assert await process.stop(15) == 0
        assert await healthcheck(PORT=refused_port, RELAY_HTTP_PORT=relay_port) == 1
    finally:
        await process.kill()


def test_ports_probed_follow_the_services_settings() -> None:
    assert probed_ports({}) == [8080, 8081]
    assert probed_ports({"PORT": "9000", "RELAY_HTTP_PORT": "off"}) == [9000]
    assert probed_ports({"PORT": "0", "RELAY_HTTP_PORT": " 9001 "}) == [9001]
    # An empty value means the default, for the service and so for its check.
    assert probed_ports({"PORT": "", "RELAY_HTTP_PORT": " "}) == [8080, 8081]


def test_the_host_probed_is_the_one_the_service_listens_on() -> None:
    # Every address (the default) includes the loopback one; a single address is probed.
    for every in ({}, {"HOST": ""}, {"HOST": "0.0.0.0"}):
        assert probed_host(every) == "127.0.0.1"
    # Every IPv6 address only: asyncio's listener on :: takes no IPv4 connection.
    assert probed_host({"HOST": "::"}) == "[::1]"
    assert probed_host({"HOST": "10.1.2.3"}) == "10.1.2.3"
    assert probed_host({"HOST": " ::1 "}) == "[::1]"
