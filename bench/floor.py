"""The floor: the least any correct order service must do, to measure the service against.

One aiohttp handler on uvloop that reads the same JSON body the service gets, parses it
with orjson, and in ONE transaction (a single data-modifying CTE, so one round trip)
inserts one row into `orders` and one into `outbox` of the service's own schema: the
same tables, indexes and foreign key to `merchants`. No auth, no
validation, no logging, no metrics, no relay. It runs against a database of its own so
the service's relay never sees its rows.

`GET /floor/ping` answers a constant JSON object without touching the database, through
the same aiohttp stack. With `--ping-port` the process also answers every GET on that port
with the same JSON from a bare uvloop protocol (no HTTP framework at all): the cheapest
server Python can be, so driving it shows what the load generator itself can do.

    python -m bench.floor --port 8091 --database-url postgresql://postgres@127.0.0.1/x
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import orjson
from aiohttp import web

POOL = web.AppKey("pool", asyncpg.Pool)
MERCHANT_ID = web.AppKey("merchant_id", int)
MERCHANT_CODE = "eyezy"
# What the floor charges: the premium_1m price of the demo catalog. Looking the price up
# would be validation; the floor does none.
AMOUNT = 2999

MERCHANT_BY_CODE = "SELECT id FROM merchants WHERE code = $1"
ORDER_AND_EVENT = """
WITH new_order AS (
    INSERT INTO orders (id, merchant_id, family, currency, base_amount, total_amount,
                        sequence, metadata)
    VALUES ($1, $2, 'initials_url', $3, $4, $4, $5, $6)
    RETURNING id
)
INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
SELECT $7, 'order.created', 'order.created', new_order.id, $8 FROM new_order
"""
PING_BODY = orjson.dumps({"status": "ok"})


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


async def create_order(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    product = data.get("product") or {}
    order_id = os.urandom(12).hex()
    await request.app[POOL].execute(
        ORDER_AND_EVENT,
        order_id,
        request.app[MERCHANT_ID],
        product.get("currency") or "USD",
        AMOUNT,
        data.get("sequence"),
        data.get("metaData"),
        uuid.uuid4(),
        {"subject": order_id, "data": data},
    )
    return web.Response(
        body=orjson.dumps({"data": {"id": order_id}, "meta": {"type": "entity"}}),
        content_type="application/json",
    )


async def ping(_request: web.Request) -> web.Response:
    return web.Response(body=PING_BODY, content_type="application/json")


class BarePing(asyncio.Protocol):
    """HTTP/1.1 keep-alive GETs answered with PING_BODY; a request ends at its blank line
    (a GET has no body), so pipelined and split requests are both answered."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(PING_BODY)}\r\n\r\n".encode()
        + PING_BODY
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.pending += data
        complete = self.pending.count(b"\r\n\r\n")
        if complete and self.transport is not None:
            self.pending = self.pending[self.pending.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(self.RESPONSE * complete)


def create_floor_app(
    database_url: str, pool_size: int, ping_port: int | None = None
) -> web.Application:
    async def database(app: web.Application) -> AsyncIterator[None]:
        # The same pool settings as the service: JSON codec, no reset round trip.
        pool = await asyncpg.create_pool(
            database_url, min_size=0, max_size=pool_size, init=_init_connection, reset=_no_reset
        )
        app[POOL] = pool
        merchant_id = await pool.fetchval(MERCHANT_BY_CODE, MERCHANT_CODE)
        if merchant_id is None:
            raise RuntimeError(f"merchant {MERCHANT_CODE} missing: load the demo catalog")
        app[MERCHANT_ID] = merchant_id
        try:
            yield
        finally:
            await pool.close()

    async def bare_ping(app: web.Application) -> AsyncIterator[None]:
        server = None
        if ping_port is not None:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(BarePing, "127.0.0.1", ping_port)
        try:
            yield
        finally:
            if server is not None:
                server.close()

    app = web.Application()
    app.cleanup_ctx.extend([database, bare_ping])
    app.router.add_post("/floor/order", create_order)
    app.router.add_get("/floor/ping", ping)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=10, help="as DB_POOL_MAX's default")
    parser.add_argument("--ping-port", type=int, default=None, help="bare-protocol GET port")
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_floor_app(args.database_url, args.pool_size, args.ping_port),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
