"""A consumer of order events in its own process: binds an exclusive queue to the events
exchange, notes the wall-clock time each event arrives, and writes
`{"<message_id>": <unix time>}` as JSON when it has `--expect` events or has waited
`--timeout` seconds. Prints READY once its queue is bound, so events sent after that
reach it.

    python -m bench.consumer --amqp-url amqp://... --exchange orders_bench --expect 2000 \
        --out receipts.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import aio_pika
import orjson


async def consume(
    amqp_url: str, exchange: str, binding: str, expect: int, timeout: float, out: Path
) -> int:
    receipts: dict[str, float] = {}
    all_in = asyncio.Event()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        events = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(events, binding)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrived = time.time()
            event_id = message.message_id
            if event_id is None:
                event_id = str(orjson.loads(message.body).get("id"))
            receipts.setdefault(event_id, arrived)
            if len(receipts) >= expect:
                all_in.set()

        await queue.consume(on_message, no_ack=True)
        print("READY", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), timeout)
    out.write_bytes(orjson.dumps(receipts))
    return len(receipts)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.consumer", description=__doc__)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--binding", default="order.created")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import uvloop

    got = uvloop.run(
        consume(args.amqp_url, args.exchange, args.binding, args.expect, args.timeout, args.out)
    )
    print(f"RECEIVED {got}", flush=True)


if __name__ == "__main__":
    main()
