"""`python -m service.healthcheck`: the container image's HEALTHCHECK, for both of its
commands. Exits 0 when GET /health/live on 127.0.0.1 answers 200 at PORT (`order-service
serve`) or, when nothing answers there, at RELAY_HTTP_PORT (`order-service relay`, which
does not listen on PORT); 1 otherwise.

It reads only those two variables: a container whose other settings are wrong is refused
by the service itself at start, with the reason, not reported here as a bare failure.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping

from service.config import Config

TIMEOUT_SECONDS = 2.0
_DEFAULTS = Config()


def probed_ports(env: Mapping[str, str]) -> list[int]:
    """PORT, then RELAY_HTTP_PORT (unless `off`), with the service's defaults; a value that
    is not a port to connect to (0 stands for any free port) is passed over."""
    ports = []
    for name, default in (("PORT", _DEFAULTS.port), ("RELAY_HTTP_PORT", _DEFAULTS.relay_http_port)):
        raw = env.get(name, str(default)).strip()
        if raw.isdigit() and 0 < int(raw) <= 65535:
            ports.append(int(raw))
    return ports


def answers_live(port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    url = f"http://127.0.0.1:{port}/health/live"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status
        return False


def main() -> int:
    return 0 if any(answers_live(port) for port in probed_ports(os.environ)) else 1


if __name__ == "__main__":
    sys.exit(main())
