"""The wake-up a process without a relay sends: one NOTIFY for many orders, not one each."""

from __future__ import annotations

import asyncio

import asyncpg

from events.outbox_wakeup import OutboxWakeup
from events.relay import LISTEN_CHANNEL
from service.config import Config
from service.sql import queries


async def test_many_orders_committed_at_once_send_one_notify(
    pool: asyncpg.Pool, config: Config
) -> None:
    received: list[str] = []
    arrived = asyncio.Event()

    def on_notify(*args: object) -> None:
        received.append(str(args[2]))
        arrived.set()

    listener = await asyncpg.connect(config.database_url)
    await listener.add_listener(LISTEN_CHANNEL, on_notify)
    try:
        wakeup = OutboxWakeup(pool, relay=None, interval=0.05)
        async with wakeup.running():
            for _ in range(100):
                wakeup.order_committed()
            async with asyncio.timeout(5):
                await arrived.wait()
        await listener.execute(queries.ping)  # a second NOTIFY would be in by now
    finally:
        await listener.close()
    # One for the hundred; a second only if the exit caught the first still returning its
    # connection (it is then sent again rather than risk none).
    assert received in ([LISTEN_CHANNEL], [LISTEN_CHANNEL] * 2)


async def test_an_order_committed_during_the_pause_is_notified_after_it(
    pool: asyncpg.Pool, config: Config
) -> None:
    received = asyncio.Queue[str]()
    listener = await asyncpg.connect(config.database_url)
    await listener.add_listener(LISTEN_CHANNEL, lambda *args: received.put_nowait(str(args[2])))
    try:
        wakeup = OutboxWakeup(pool, relay=None, interval=0.05)
        async with wakeup.running():
            wakeup.order_committed()
            async with asyncio.timeout(5):
                await received.get()
            wakeup.order_committed()  # while the first NOTIFY's pause runs
            async with asyncio.timeout(5):
                assert await received.get() == LISTEN_CHANNEL
    finally:
        await listener.close()
