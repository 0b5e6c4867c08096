"""Domain and API errors. Handlers raise these; the error middleware renders them in the
error format of the endpoint family the request belongs to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FieldErrors = Mapping[str, Sequence[str]]


class ApiError(Exception):
    status = 400
    code = "bad_request"
    # The answer closes the connection: what is left of the request cannot be read.
    closes_connection = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: FieldErrors | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items()}
        self.headers = dict(headers or {})

    @property
    def field(self) -> str | None:
        """The first field named, for formats that carry one field per error."""
        return next(iter(self.fields), None)


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"

    @classmethod
    def over(cls, limit: int) -> PayloadTooLarge:
        """The 413 for a body over `limit` bytes (REQUEST_BODY_LIMIT), naming the limit."""
        return cls(f"Request body is larger than the limit of {byte_size(limit)}")


def byte_size(size: int) -> str:
    """65536 -> "64 KiB", 1048576 -> "1 MiB", 1500 -> "1500 bytes"."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


class RequestTimeout(ApiError):
    """The body stopped arriving. The connection is closed with the answer: what is left
    of the body would be read as the next request."""

    status = 408
    code = "request_timeout"
    closes_connection = True

    @classmethod
    def after(cls, seconds: float) -> RequestTimeout:
        """The 408 for a body not complete within `seconds` (BODY_READ_TIMEOUT)."""
        return cls(f"The request body did not arrive within {seconds:g} s")


class UnreadableBody(BadRequest):
    """The body cannot be read to its end (not valid for its Content-Encoding, broken
    chunked framing). The connection is closed with the answer: to keep it, aiohttp would
    read the rest of the body and meet the same error again, logged as an unhandled
    exception with its traceback."""

    closes_connection = True


class ClientClosedRequest(ApiError):
    """The client hung up before its request body was in: nobody is left to answer, and
    the request is logged and counted with nginx's 499, not taken for a database outage."""

    status = 499
    code = "client_closed_request"
    closes_connection = True


class ValidationFailed(ApiError):
    status = 422
    code = "validation_error"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


PRODUCT_NOT_FOUND = "Product not found by merchant and code"


class ProductNotFound(NotFound):
    code = "product_not_found"

    def __init__(self, field: str, product_code: str) -> None:
        super().__init__(PRODUCT_NOT_FOUND, fields={field: [f"unknown product {product_code!r}"]})
