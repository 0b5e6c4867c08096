"""RabbitMQ cut mid-load and restored: orders keep coming, their events go out later."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.config import Config
from tests.conftest import AMQP_URL
from tests.faults.conftest import Launch, report
from tests.faults.harness import EventConsumer, Load, check_books, wait_until
from tests.support.tcp_proxy import TcpProxy


async def test_broker_cut_mid_load_loses_nothing(
    launch: Launch,
    config: Config,
    consumer: EventConsumer,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with TcpProxy("127.0.0.1", 5672) as proxy:
        service = await launch("serve", "--workers", "1", AMQP_URL=proxy.url_for(AMQP_URL))
        port = await service.serving_port()
        load = Load(f"http://127.0.0.1:{port}", clients=8)
        load.start()
        assert await wait_until(lambda: len(consumer.deliveries) >= 30, 20)

        await proxy.cut()
        cut_at = len(load.attempts)
        delivered_at_cut = len(consumer.deliveries)
        await asyncio.sleep(1.5)
        during_cut = load.attempts[cut_at:]
        # Events made during the cut cannot have reached the consumer yet.
        held_back = len(consumer.deliveries) - delivered_at_cut
        mark = len(service.events)
        await proxy.restore()
        await service.wait_for_event(lambda e: e.get("event") == "broker_connected", 15, mark)
        await asyncio.sleep(0.5)
        await load.stop()

        books = await check_books("RabbitMQ cut", db, load.requests, consumer)
        assert await service.stop() == 0, service.output()

    books.notes["200s during the cut"] = sum(a.status == 200 for a in during_cut)
    books.notes["delivered during the cut"] = held_back
    report(capsys, books.line())
    books.assert_clean()
    # Orders were taken while the broker was away.
    assert books.notes["200s during the cut"] > 0
    assert all(a.status == 200 for a in load.attempts)
