"""GET /asyncapi.json: the event contract (AsyncAPI 3) of the `orders` exchange."""

from __future__ import annotations

from aiohttp import web

from events.contract import asyncapi_bytes

routes = web.RouteTableDef()


@routes.get("/asyncapi.json")
async def asyncapi(_request: web.Request) -> web.Response:
    return web.Response(body=asyncapi_bytes(), content_type="application/json")
