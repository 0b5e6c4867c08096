"""Broker.close() ends even when its cancel lands just as a connection attempt completes.

aio_pika.connect() runs the AMQP handshake under asyncio.wait_for, which before Python
3.12 swallows a cancel that arrives in the loop iteration in which the handshake
finishes: the connect returns the connection and the task carries on. Broker.close()
then waited forever, which hung an app's clean-up (a test's `client` teardown) now and
then.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest

from events.broker import Broker
from service.config import Config


async def test_close_during_the_end_of_the_handshake_returns(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(config.amqp_url)
    closing: list[asyncio.Task[None]] = []
    real_connect = aiormq.connect

    async def connect(*args: Any, **kwargs: Any) -> Any:
        connection = await real_connect(*args, **kwargs)
        # The app's clean-up calls close() in the iteration that completes the handshake.
        asyncio.get_running_loop().call_soon(
            lambda: closing.append(asyncio.ensure_future(broker.close()))
        )
        return connection

    monkeypatch.setattr(aiormq, "connect", connect)
    broker.start()
    async with asyncio.timeout(10):
        while not closing:
            await asyncio.sleep(0.01)
    done, _ = await asyncio.wait(closing, timeout=5)
    assert done, "Broker.close() did not return"
    assert broker._task is not None and broker._task.done()
    assert not broker.connected


async def test_close_at_any_moment_of_connecting_returns(config: Config) -> None:
    loop = asyncio.get_running_loop()
    for n in range(40):
        broker = Broker(config.amqp_url)
        broker.start()
        await asyncio.sleep(0.001 * n)  # 0 to 40 ms: before, during and after the handshake
        started = loop.time()
        async with asyncio.timeout(10):
            await broker.close()
        assert loop.time() - started < 5
        assert broker._task is not None and broker._task.done()
