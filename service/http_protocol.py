"""Answers for requests the app never sees. A request aiohttp cannot parse (a bad header
line, a bad chunk size, two Content-Lengths) or an error raised outside the middleware is
answered by aiohttp itself: plain text, and a traceback logged at error level. Here they
get the JSON error body of the family the request line names (the parser never tells the
path of a request it refused, so the path is read off the bytes the request starts with;
the merchant format when none could be) and one log line without a traceback for a
client's mistake, so garbage from a client neither breaks a JSON client nor pages the
operator on call."""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from service.errors import ApiError
from service.middleware import REQUEST_ID_HEADER, SERVER_NAME, new_request_id, render_error
from service.request_metrics import observe_request

log = structlog.get_logger(__name__)


# A request line's method and the path of its target (up to a query, a fragment or the
# version); only what a request's first bytes on the connection can hold is looked at.
_REQUEST_LINE = re.compile(rb"[A-Z]{1,20} (/[^ ?#\r\n]{0,200})")

# The parser's reason goes up to the first colon or quote: after it, aiohttp quotes the
# offending bytes, which can be a header's value (a Bearer token, say).
_REASON = re.compile(r"[^:'\"\r\n]{1,100}")


def malformed_request_error(status: int, exc: BaseException | None) -> ApiError:
    """The error for a request aiohttp refused while reading it, named by the parser's
    reason ("Invalid header token", "Duplicate Content-Length", ...) without the bytes
    it quotes."""
    reason = exc.message if isinstance(exc, HttpProcessingError) else ""
    found = _REASON.match((reason or "").strip())
    detail = found[0].strip() if found and found[0].strip() else "unreadable request"
    return ApiError(
        f"Malformed HTTP request: {detail}", code="malformed_http_request", status=status
    )


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, with its error answers in the service's format."""

    # The path named by the last request line this connection received at the start of
    # a read. HTTP clients send each request from its first byte once the answer to the
    # one before is in, so a refused request's bytes begin with its own request line;
    # the rest of a body, read later, keeps the path of the request it belongs to.
    request_path = ""

    def data_received(self, data: bytes) -> None:
        if data[:1].isupper():
            found = _REQUEST_LINE.match(data)
            if found:
                self.request_path = found[1].decode("latin-1")
        # The request whose handler may be reading its body, and the requests queued:
        # aiohttp's own attributes, read defensively (without them the body's read waits
        # for BODY_READ_TIMEOUT, as in plain aiohttp).
        reading: web.BaseRequest | None = getattr(self, "_current_request", None)
        queued = getattr(self, "_messages", ())
        before = len(queued)
        super().data_received(data)
        if reading is not None and len(queued) > before and not reading.content.is_eof():
            # A message parsed while this body is unfinished can only be the parser's
            # error (a broken chunk line, say): it drops the body it was filling without
            # telling its reader, which would wait for the rest until BODY_READ_TIMEOUT.
            reading.content.set_exception(
                RequestPayloadError("the request body's framing is broken")
            )

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        request_id = new_request_id()
        if status < 500:
            error = malformed_request_error(status, exc)
            log.warning(
                "malformed_http_request",
                request_id=request_id,
                status=status,
                error=error.message,
                remote=request.remote,
            )
        else:
            error = ApiError(
                "Internal error; it has been logged", code="internal_error", status=status
            )
            log.error("unhandled_error", request_id=request_id, status=status, exc_info=exc)
        observe_request("unmatched", "OTHER", status, 0.0)
        if request.writer.output_size > 0:
            # Part of an answer is out already: the connection is broken, as aiohttp says.
            raise ConnectionError("Response already started; cannot send the error")
        response = render_error(request, error, request_id, path=self.request_path or None)
        response.headers[REQUEST_ID_HEADER] = request_id
        response.headers[hdrs.SERVER] = SERVER_NAME
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After an answer, aiohttp reads what is left of the body to keep the connection.
        # A body broken for its Content-Encoding or chunked framing was answered with a 400
        # already (logged on its access line); meeting the error again is no fault here.
        if isinstance(kw.get("exc_info"), RequestPayloadError):
            log.debug("request_body_unreadable_after_answer", error=str(kw["exc_info"]))
            return
        super().log_exception(*args, **kw)


class JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class OrderServiceRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer aiohttp's own errors in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app builds its Server with private arguments of its own; swapping the class
        # keeps them and changes only which connection handler it makes.
        server.__class__ = JsonErrorServer
        return server
