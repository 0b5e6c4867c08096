"""GET /asyncapi.json: the event contract (AsyncAPI 3) of this instance's exchange."""

from __future__ import annotations

from aiohttp import web

from events.contract import asyncapi_for_exchange
from service.state import CONFIG

routes = web.RouteTableDef()


@routes.get("/asyncapi.json")
async def asyncapi(request: web.Request) -> web.Response:
    body = asyncapi_for_exchange(request.app[CONFIG].events_exchange)
    return web.Response(body=body, content_type="application/json")
