"""`order-service relay`: the relay alone as a process, stopped by SIGTERM."""

from __future__ import annotations

import signal

from service.config import Config
from tests.events.conftest import EventConsumer, PlaceOrders
from tests.support.service_process import ServiceProcess, service_env


async def test_relay_command_publishes_and_stops_on_sigterm(
    placer: PlaceOrders, consumer: EventConsumer, config: Config
) -> None:
    process = await ServiceProcess(["relay"], service_env(config)).start()
    try:
        await process.wait_for_event(lambda e: e.get("event") == "relay_started")
        orders = await placer(5)
        await consumer.wait_for([o.event_id for o in orders])
        process.send_signal(signal.SIGTERM)
        assert await process.wait(15) == 0
        await process.wait_for_event(lambda e: e.get("event") == "relay_stopped")
    finally:
        await process.kill()
