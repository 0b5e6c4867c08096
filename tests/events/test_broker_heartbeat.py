"""The AMQP heartbeat the service asks for: a broker that stops answering without closing
the connection is noticed after three missed heartbeats, not after RabbitMQ's 60 s ones
(readiness said "ok" for three minutes with the broker frozen)."""

from __future__ import annotations

import pytest

from events.broker import HEARTBEAT_SECONDS, Broker, with_heartbeat
from service.config import Config


@pytest.mark.parametrize(
    ("url", "asked"),
    [
        ("amqp://guest:guest@rabbit:5672/", "amqp://guest:guest@rabbit:5672/?heartbeat=10"),
        (
            "amqp://rabbit/vhost?connection_name=x",
            "amqp://rabbit/vhost?connection_name=x&heartbeat=10",
        ),
        ("amqp://rabbit/?heartbeat=30", "amqp://rabbit/?heartbeat=30"),
    ],
)
def test_the_url_asks_for_a_heartbeat_unless_it_names_one(url: str, asked: str) -> None:
    assert with_heartbeat(url) == asked


async def test_the_connection_runs_with_the_short_heartbeat(config: Config) -> None:
    broker = Broker(config.amqp_url)
    broker.start()
    try:
        connection = await broker.wait_connected()
        transport = connection.transport
        assert transport is not None
        assert transport.connection.heartbeat_timeout == HEARTBEAT_SECONDS
    finally:
        await broker.close()
