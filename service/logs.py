"""structlog set-up: one JSON object per line on stdout, secrets redacted."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog

from service.config import redact_passwords

# Keys whose values never reach a log line, whatever logs them.
SECRET_KEYS = frozenset(
    {"x-token", "x_token", "authorization", "secret", "password", "token", "jwt", "api_key"}
)


# Values that cannot hold a secret (most of a line's, besides short strings).
_PLAIN = frozenset({int, float, bool, type(None)})


def _redact_value(value: Any) -> Any:
    if type(value) is str:
        # Most values are short strings without a URL: one substring test and out.
        return redact_passwords(value) if "://" in value else value
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in SECRET_KEYS else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if isinstance(value, str):
        # A subclass (a str Enum, say) is kept as it is unless it holds a URL.
        return redact_passwords(value) if "://" in value else value
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        # Values are replaced in place, keys never added or removed: safe while iterating.
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif type(value) is str:
            if "://" in value:
                event_dict[key] = redact_passwords(value)
        elif type(value) not in _PLAIN:
            event_dict[key] = _redact_value(value)
    return event_dict


# The second last stamped and its text, replaced as one tuple: a line logged from another
# thread (HardStop's timer, the standard library's loggers) never pairs one with the other's.
_stamp: tuple[int, str] = (-1, "")


def utc_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`timestamp`: RFC 3339 in UTC with microseconds, as structlog's
    TimeStamper(fmt="iso", utc=True) gives it, at a fifth of its cost (the part down to the
    second is formatted once a second) and always with its six digits."""
    global _stamp
    now = time.time()
    second = int(now)
    stamped_second, prefix = _stamp
    if second != stamped_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp = (second, prefix)
    event_dict["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


class _Stdout(io.TextIOBase):
    """Whatever sys.stdout is at the moment of writing, and a write that never raises.

    A logger binds its stream once; writing through this keeps a replaced stdout (tests
    capture it) working, and a closed or broken stdout (a dead log collector) costs the
    log line, never the request that was being logged.
    """

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()


STDOUT = _Stdout()


def _orjson_dumps(value: Any, default: Any = None) -> str:
    try:
        return orjson.dumps(value, default=default or str).decode()
    except orjson.JSONEncodeError:
        # A string orjson refuses (a lone surrogate: a header's undecodable bytes) must not
        # cost the log line, let alone the request that logs it; json escapes it instead.
        return json.dumps(value, default=default or str, skipkeys=True)


# What configure_logging installed for JSON lines at info level or below: structlog's
# configuration of the moment (to tell it is still the one installed: structlog.configure
# may replace any part of it, and structlog.testing.capture_logs changes the configured
# list of processors in place) and a writer sharing the lock of structlog's.
# None otherwise: access lines then go through structlog.
_json_info: tuple[tuple[Any, ...], structlog.WriteLogger] | None = None


def _installed_config() -> tuple[Any, ...]:
    config = structlog.get_config()
    return (
        tuple(config["processors"]),
        config["wrapper_class"],
        config["logger_factory"],
        config["context_class"],
    )


def log_access(fields: dict[str, Any]) -> None:
    """`structlog.get_logger("access").info("request", **fields)` (`fields` is taken over).

    With configure_logging's JSON chain, the line is made here by the same processors
    without structlog's generic call path (lazy proxy, context copy, processor loop, lock
    per call): half the cost of the line, one of which every request writes.
    """
    installed = _json_info
    if installed is None or _installed_config() != installed[0]:
        # A logger of the configuration of the moment (a cached one keeps its first).
        structlog.get_logger("access").info("request", **fields)
        return
    processors = installed[0][0]
    fields["event"] = "request"
    structlog.contextvars.merge_contextvars(None, "info", fields)
    fields["level"] = "info"
    utc_timestamp(None, "info", fields)
    if "exc_info" in fields:
        structlog.processors.format_exc_info(None, "info", fields)
    redact_secrets(None, "info", fields)
    # The configured renderer: its serializer's `default` is structlog's (__structlog__,
    # then repr), not _orjson_dumps' own str.
    installed[1].msg(processors[-1](None, "info", fields))


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    global _json_info
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        utc_timestamp,
        # Tracebacks are rendered first so that redaction covers them too.
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]
    _json_info = None
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (message and newline together): lines of several worker
        # processes sharing stdout never interleave.
        logger_factory=structlog.WriteLoggerFactory(cast(TextIO, STDOUT)),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (aiohttp, asyncio, aio-pika) go
    # through the same processors, so every line on stdout is JSON with the secrets out.
    handler = logging.StreamHandler(STDOUT)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                utc_timestamp,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    if fmt != "console" and numeric <= logging.INFO:
        _json_info = (_installed_config(), structlog.WriteLogger(cast(TextIO, STDOUT)))
    handler.addFilter(drop_reconnect_noise)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


# aiormq logs every failed connection attempt at error level, before raising it; the
# Broker logs the same attempt as broker_connect_failed (a warning, with its retry delay).
# Alerts on error lines would fire at every retry of a RabbitMQ outage.
AIORMQ_CONNECT_ATTEMPT = "error when creating transport"


def drop_reconnect_noise(record: logging.LogRecord) -> bool:
    return not (
        record.name == "aiormq.connection"
        and isinstance(record.msg, str)
        and record.msg.startswith(AIORMQ_CONNECT_ATTEMPT)
    )
