"""GET /openapi.json (built once at start-up) and the offline docs page GET /docs, whose
Swagger UI assets come from the swagger-ui-bundle package: no CDN, no internet needed.

The assets are served by name from a fixed list, not by a static route over the package
directory: nothing else of the package is reachable, and an unknown name gets the JSON
404 of every other route (a static route answers it with an empty octet-stream)."""

from __future__ import annotations

import orjson
from aiohttp import web

from service.docs_assets import ASSETS, SWAGGER_UI_DIR, DocsAssetResponse
from service.errors import NotFound
from service.openapi import build_openapi, served_operations

routes = web.RouteTableDef()

OPENAPI_JSON = web.AppKey("openapi_json", bytes)

# Relative URLs, so the page also works behind a reverse proxy that adds a path prefix.
# validatorUrl null: Swagger UI would otherwise send the document to an online validator.
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>order-service API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  </script>
</body>
</html>
"""


async def build_openapi_document(app: web.Application) -> None:
    """on_startup: the document of exactly the routes this app serves, rendered once."""
    app[OPENAPI_JSON] = orjson.dumps(build_openapi(served_operations(app.router)))


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type="application/json")


@routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


@routes.get("/docs/assets/{filename}")
async def docs_asset(request: web.Request) -> DocsAssetResponse:
    filename = request.match_info["filename"]
    media_type = ASSETS.get(filename)
    if media_type is None:
        raise NotFound("No such file", code="route_not_found")
    return DocsAssetResponse(SWAGGER_UI_DIR / filename, headers={"Content-Type": media_type})
