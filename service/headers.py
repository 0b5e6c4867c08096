"""Names of the HTTP headers the service defines beyond the standard ones, in one place:
the handlers, the CORS answers and the OpenAPI document all name them."""

from __future__ import annotations

REQUEST_ID = "X-Request-ID"
IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
