"""`python -m service.healthcheck`: the container image's HEALTHCHECK, for both of its
commands. Exits 0 when GET /health/live on HOST (127.0.0.1 when it is every address, the
default; ::1 for every IPv6 address) answers 200 at PORT (`order-service serve`) or, when
nothing answers there, at RELAY_HTTP_PORT (`order-service relay`, which does not listen on
PORT); 1 otherwise.

It reads only those three variables: a container whose other settings are wrong is refused
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
# HOST values that listen on every address, the loopback one included (compared only).
_EVERY_ADDRESS = frozenset({"", "0.0.0.0"})  # noqa: S104
# Every IPv6 address: asyncio binds it IPv6-only (IPV6_V6ONLY), so 127.0.0.1 finds nothing.
_EVERY_IPV6_ADDRESS = "::"


def probed_ports(env: Mapping[str, str]) -> list[int]:
    """PORT, then RELAY_HTTP_PORT (unless `off`), with the service's defaults (also for an
    empty value, as the service reads it); a value that is not a port to connect to (0
    stands for any free port) is passed over."""
    ports = []
    for name, default in (("PORT", _DEFAULTS.port), ("RELAY_HTTP_PORT", _DEFAULTS.relay_http_port)):
        raw = env.get(name, "").strip() or str(default)
        if raw.isdigit() and 0 < int(raw) <= 65535:
            ports.append(int(raw))
    return ports


def probed_host(env: Mapping[str, str]) -> str:
    """The address to reach the service at, as a URL host: HOST when it names one address,
    the loopback one when the service listens on all of them (the default)."""
    host = env.get("HOST", "").strip()
    if host in _EVERY_ADDRESS:
        return "127.0.0.1"
    if host == _EVERY_IPV6_ADDRESS:
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def answers_live(port: int, timeout: float = TIMEOUT_SECONDS, host: str = "127.0.0.1") -> bool:
    url = f"http://{host}:{port}/health/live"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status
        return False


def main() -> int:
    host = probed_host(os.environ)
    return 0 if any(answers_live(port, host=host) for port in probed_ports(os.environ)) else 1


if __name__ == "__main__":
    sys.exit(main())
