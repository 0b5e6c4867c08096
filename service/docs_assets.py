"""The Swagger UI files the docs page loads, from the swagger-ui-bundle package on disk,
and the response that serves one of them."""

from __future__ import annotations

from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from swagger_ui_bundle import swagger_ui_path

from service.errors import ApiError, NotFound
from service.middleware import (
    REQUEST_ID_HEADER,
    StatusSetInPrepare,
    new_request_id,
    render_error,
)

SWAGGER_UI_DIR = Path(str(swagger_ui_path))
# Each file by name, with the media type it is served as.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}


class _ErrorsAsJson(StatusSetInPrepare):
    """Sits between FileResponse and StreamResponse in DocsAssetResponse's MRO.

    FileResponse decides some answers itself, in prepare(), long after the handler and
    the error middleware are done: 416 for a Range it cannot serve, 412 for a failed
    If-Match or If-Unmodified-Since, 403 or 404 for a file it cannot open. It then calls
    super().prepare() with no body at all (and the asset's Content-Type). That call
    lands here, where such an error gets the JSON body and Content-Type every other
    error of the service has, made by the middleware's render_error, and where the
    status FileResponse settled is logged and counted.
    """

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        self.status_settled()
        if self.status < 400 or self.prepared:
            return await super().prepare(request)
        # The middleware gave the response its request id on the way out of the handler.
        request_id = self.headers.get(REQUEST_ID_HEADER) or new_request_id()
        self.headers[REQUEST_ID_HEADER] = request_id
        error = self._as_api_error()
        rendered = render_error(request, error, request_id)
        body = rendered.body
        assert isinstance(body, bytes)  # render_error answers with json_response
        self.headers[hdrs.CONTENT_TYPE] = rendered.headers[hdrs.CONTENT_TYPE]
        self.headers.update(error.headers)
        self.content_length = len(body)
        writer = await super().prepare(request)
        if request.method != hdrs.METH_HEAD:
            await self.write(body)
        return writer

    def _as_api_error(self) -> ApiError:
        if self.status == 416:
            # FileResponse has already set "Content-Range: bytes */<size>" (RFC 9110 14.4).
            content_range = self.headers.get(hdrs.CONTENT_RANGE, "")
            size = content_range.removeprefix("bytes */")
            return ApiError(
                f"The requested range is not satisfiable; the file is {size} bytes",
                code="range_not_satisfiable",
                status=416,
                fields={"headers.range": [f"must be one byte range starting below {size}"]},
                headers={hdrs.CONTENT_RANGE: content_range},
            )
        if self.status == 412:
            return ApiError(
                "A precondition of the request (If-Match or If-Unmodified-Since) failed",
                code="precondition_failed",
                status=412,
            )
        if self.status == 404:
            return NotFound("No such file", code="route_not_found")
        return ApiError(self.reason, code="http_error", status=self.status)


class DocsAssetResponse(web.FileResponse, _ErrorsAsJson):
    """A docs asset: aiohttp's FileResponse (ranges, conditional requests, sendfile),
    whose own error answers are JSON in the service's error format."""
