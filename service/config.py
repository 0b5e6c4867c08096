"""Configuration from environment variables, validated once at start."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

T = TypeVar("T")

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/order_service"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
MAX_WORKERS = 64
# Beyond the longest a request can hold an Idempotency-Key claim, before its claim counts
# as abandoned: room for event-loop and network delays.
CLAIM_STALE_SLACK_SECONDS = 2.0


class ConfigError(ValueError):
    """An environment variable has a value the service cannot run with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


# The orders a worker's writers take at once between them when ORDER_BATCH_MAX is not set:
# about the concurrent requests of one busy client pool (the benchmark drives 32).
SPLIT_BATCH = 32


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    database_url_explicit: bool = False
    amqp_url: str = DEFAULT_AMQP_URL
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by default
    port: int = 8080
    log_level: str = "info"
    log_format: str = "json"
    migrate_on_start: bool = True
    relay_enabled: bool = True
    # Whether some process of this instance runs the relay (set by `serve` for the workers
    # it starts without one); None: this process's relay_enabled.
    instance_relay: bool | None = None
    db_pool_min: int = 0
    db_pool_max: int = 10
    db_acquire_timeout: float = 2.0
    db_statement_timeout_ms: int = 5000
    request_body_limit: int = 64 * 1024
    body_read_timeout: float = 30.0
    shutdown_timeout: float = 10.0
    signature_window_seconds: int = 300
    idempotency_ttl_seconds: int = 24 * 3600
    outbox_retention_seconds: int = 7 * 24 * 3600
    outbox_poll_interval: float = 1.0
    relay_batch_size: int = 500
    # None: chosen by the number of worker processes (writers_per_worker, writer_batch_max).
    order_writers: int | None = None
    order_batch_max: int | None = None
    relay_coalesce_ms: int = 10
    events_exchange: str = "orders"
    event_source: str = "/order-service"
    jwt_secret: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    metrics_enabled: bool = True
    # `order-service relay`'s probes and metrics listen on HOST and this port; None: none.
    relay_http_port: int | None = 8081
    # Browser origins allowed to call the customer endpoints (/external/); "*" is any.
    cors_allowed_origins: frozenset[str] = frozenset()
    workers: int = 0  # 0: one worker process per CPU core
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def writers_per_worker(self) -> int:
        """ORDER_WRITERS, else two for a single worker process and one for each of several.
        A lone event loop would idle while its one batch, nearly every request it holds, is
        in PostgreSQL: with two writers one batch is written while it serves the next. With
        several workers the others' loops fill that time, and larger batches cost less per
        order (README, ORDER_WRITERS). `serve` sets `workers` to the count it starts."""
        if self.order_writers is not None:
            return self.order_writers
        return 2 if self.workers == 1 else 1

    @property
    def writer_batch_max(self) -> int:
        """ORDER_BATCH_MAX, else SPLIT_BATCH orders shared among the writers: two writers
        taking any number each took batches of every size and gained less."""
        if self.order_batch_max is not None:
            return self.order_batch_max
        return max(1, SPLIT_BATCH // self.writers_per_worker)

    @property
    def instance_runs_relay(self) -> bool:
        return self.relay_enabled if self.instance_relay is None else self.instance_relay

    @property
    def db_command_timeout(self) -> float:
        """How long the client waits for a statement's answer: a second past PostgreSQL's
        statement_timeout, so the server cancels (and rolls back) first."""
        return max(self.db_statement_timeout_ms / 1000 + 1, 2)

    @property
    def idempotency_claim_stale_seconds(self) -> float:
        """After this long an unfinished Idempotency-Key claim belongs to a request that
        died, and a retry may take it over. A live request holds its claim at most for one
        connection wait and its order write."""
        return self.db_acquire_timeout + self.db_command_timeout + CLAIM_STALE_SLACK_SECONDS

    @property
    def database_url_redacted(self) -> str:
        return redact_url(self.database_url)

    @property
    def amqp_url_redacted(self) -> str:
        return redact_url(self.amqp_url)


# A URL's password runs to the last "@" before the host's path (a password may hold "@"),
# and the user name may be empty.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^\s/]*@", re.IGNORECASE)


def redact_passwords(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***, however malformed the
    URL (a configuration error shows the value it refuses)."""
    return _URL_PASSWORD.sub(r"\g<scheme>***@", text)


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _port_or_off(raw: str) -> int | None:
    """A TCP port (0: any free one), or None for `off`."""
    if raw.strip().lower() == "off":
        return None
    try:
        return _int(0, 65535)(raw)
    except ValueError:
        raise ValueError("must be a port (0 to 65535) or off") from None


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be a URL with scheme {' or '.join(schemes)} and a host")
        try:
            parts.port  # noqa: B018 - accessing it validates the port
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        return raw

    return parse


def _database_url(raw: str) -> str:
    """A PostgreSQL URL naming its server (a host, or a socket directory as ?host=) and
    its database: left out, libpq would pick both from the OS user and its socket."""
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("must be a URL with scheme postgresql or postgres")
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise ValueError("must name a host (or a socket directory as ?host=/path)")
    if not parts.path.strip("/"):
        raise ValueError("must name a database, e.g. postgresql://postgres@127.0.0.1/orders")
    try:
        parts.port  # noqa: B018 - accessing it validates the port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return raw


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def _path(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"file {raw} does not exist")
    return path


def _algorithms(raw: str) -> tuple[str, ...]:
    allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}
    values = tuple(a.strip() for a in raw.split(",") if a.strip())
    if not values or any(a not in allowed for a in values):
        raise ValueError(f"must be a comma-separated list of {', '.join(sorted(allowed))}")
    return values


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(value: str) -> str:
    """`value` as a browser sends it in Origin (scheme://host[:port], lower case, no default
    port), or ValueError: a value no browser ever sends would silently never match."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    if ":" in host:  # urlsplit drops the brackets of an IPv6 address
        host = f"[{host}]" if re.fullmatch(r"[0-9a-f:.]+", host) else ""
    elif not re.fullmatch(r"[a-z0-9.-]+", host):
        host = ""
    try:
        port = parts.port
    except ValueError:
        port = None
        host = ""
    origin = f"{parts.scheme}://{host}"
    if port is not None and port != DEFAULT_PORTS.get(parts.scheme):
        origin += f":{port}"
    if parts.scheme not in DEFAULT_PORTS or not host or origin != value.lower():
        raise ValueError(
            f"{value!r} is not an origin as browsers send it; give * or origins like "
            "https://shop.example.com or http://localhost:3000 (no path, no default port)"
        )
    return origin


def _origins(raw: str) -> frozenset[str]:
    """`*`, or comma-separated origins."""
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if values == ["*"]:
        return frozenset(values)
    if not values:
        raise ValueError("give * or origins like https://shop.example.com")
    return frozenset(_origin(value) for value in values)


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        shown = redact_passwords(raw)
        raise ConfigError(name, f"invalid value {shown!r}: {redact_passwords(str(exc))}") from exc


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Reads and validates the configuration; raises ConfigError naming the bad variable."""
    env = os.environ if env is None else env
    d = Config()
    pem = _read(env, "JWT_PUBLIC_KEY_FILE", _path, None)
    algorithms = _read(
        env, "JWT_ALGORITHMS", _algorithms, ("RS256", "ES256") if pem else d.jwt_algorithms
    )
    config = Config(
        database_url=_read(env, "DATABASE_URL", _database_url, d.database_url),
        database_url_explicit=bool(env.get("DATABASE_URL")),
        amqp_url=_read(env, "AMQP_URL", _url("amqp", "amqps"), d.amqp_url),
        host=_read(env, "HOST", _text, d.host),
        port=_read(env, "PORT", _int(0, 65535), d.port),
        log_level=_read(env, "LOG_LEVEL", _choice(*LOG_LEVELS), d.log_level),
        log_format=_read(env, "LOG_FORMAT", _choice(*LOG_FORMATS), d.log_format),
        migrate_on_start=_read(env, "MIGRATE_ON_START", _bool, d.migrate_on_start),
        relay_enabled=_read(env, "RELAY_ENABLED", _bool, d.relay_enabled),
        db_pool_min=_read(env, "DB_POOL_MIN", _int(0, 1000), d.db_pool_min),
        db_pool_max=_read(env, "DB_POOL_MAX", _int(1, 1000), d.db_pool_max),
        db_acquire_timeout=_read(
            env, "DB_ACQUIRE_TIMEOUT", _float(0.01, 600), d.db_acquire_timeout
        ),
        db_statement_timeout_ms=_read(
            env, "DB_STATEMENT_TIMEOUT_MS", _int(100, 50_000), d.db_statement_timeout_ms
        ),
        request_body_limit=_read(
            env, "REQUEST_BODY_LIMIT", _int(1024, 16 * 1024 * 1024), d.request_body_limit
        ),
        body_read_timeout=_read(env, "BODY_READ_TIMEOUT", _float(0.1, 600), d.body_read_timeout),
        shutdown_timeout=_read(env, "SHUTDOWN_TIMEOUT", _float(0, 600), d.shutdown_timeout),
        signature_window_seconds=_read(
            env, "SIGNATURE_WINDOW_SECONDS", _int(1, 3600), d.signature_window_seconds
        ),
        idempotency_ttl_seconds=_read(
            env, "IDEMPOTENCY_TTL_SECONDS", _int(60, 30 * 86400), d.idempotency_ttl_seconds
        ),
        outbox_retention_seconds=_read(
            env, "OUTBOX_RETENTION_SECONDS", _int(0, 365 * 86400), d.outbox_retention_seconds
        ),
        outbox_poll_interval=_read(
            env, "OUTBOX_POLL_INTERVAL", _float(0.01, 60), d.outbox_poll_interval
        ),
        relay_batch_size=_read(env, "RELAY_BATCH_SIZE", _int(1, 10_000), d.relay_batch_size),
        order_writers=_read(env, "ORDER_WRITERS", _int(1, 100), d.order_writers),
        order_batch_max=_read(env, "ORDER_BATCH_MAX", _int(1, 500), d.order_batch_max),
        relay_coalesce_ms=_read(env, "RELAY_COALESCE_MS", _int(0, 1000), d.relay_coalesce_ms),
        events_exchange=_read(env, "EVENTS_EXCHANGE", _text, d.events_exchange),
        event_source=_read(env, "EVENT_SOURCE", _text, d.event_source),
        jwt_secret=_read(env, "JWT_SECRET", _text, d.jwt_secret),
        jwt_public_key_file=pem,
        jwt_algorithms=algorithms,
        jwt_issuer=_read(env, "JWT_ISSUER", _text, d.jwt_issuer),
        jwt_audience=_read(env, "JWT_AUDIENCE", _text, d.jwt_audience),
        jwt_leeway_seconds=_read(env, "JWT_LEEWAY_SECONDS", _int(0, 600), d.jwt_leeway_seconds),
        metrics_enabled=_read(env, "METRICS_ENABLED", _bool, d.metrics_enabled),
        relay_http_port=_read(env, "RELAY_HTTP_PORT", _port_or_off, d.relay_http_port),
        cors_allowed_origins=_read(env, "CORS_ALLOWED_ORIGINS", _origins, d.cors_allowed_origins),
        workers=_read(env, "WORKERS", _int(0, MAX_WORKERS), d.workers),
    )
    if config.db_pool_min > config.db_pool_max:
        raise ConfigError("DB_POOL_MIN", "must not exceed DB_POOL_MAX")
    if config.idempotency_ttl_seconds < 2 * config.signature_window_seconds:
        # A signed request can be sent again for as long as its x-date is in the window,
        # and an x-date may be a window ahead of the server's clock: a resend with its
        # Idempotency-Key must still find the stored answer up to two windows after the
        # first send.
        raise ConfigError(
            "IDEMPOTENCY_TTL_SECONDS",
            "must be at least twice SIGNATURE_WINDOW_SECONDS",
        )
    _check_jwt_keys(config)
    return config


# RFC 7518 section 3.2: an HMAC key at least as long as the hash's output.
HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _check_jwt_keys(config: Config) -> None:
    """Every accepted algorithm has a usable key: otherwise each token of that algorithm
    would be refused (or fail) one request at a time instead of the service not starting."""
    hmac = [a for a in config.jwt_algorithms if a in HMAC_MIN_KEY_BYTES]
    if config.jwt_secret is not None and hmac:
        needed = max(HMAC_MIN_KEY_BYTES[a] for a in hmac)
        if len(config.jwt_secret.encode()) < needed:
            raise ConfigError(
                "JWT_SECRET", f"must be at least {needed} bytes for {', '.join(hmac)}"
            )
    public_key_algorithms = [a for a in config.jwt_algorithms if a not in HMAC_MIN_KEY_BYTES]
    if public_key_algorithms and config.jwt_public_key_file is None:
        raise ConfigError(
            "JWT_ALGORITHMS",
            f"{', '.join(public_key_algorithms)} need JWT_PUBLIC_KEY_FILE",
        )
    if config.jwt_public_key_file is not None:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            load_pem_public_key(config.jwt_public_key_file.read_bytes())
        except (ValueError, TypeError, OSError, UnsupportedAlgorithm) as exc:
            raise ConfigError(
                "JWT_PUBLIC_KEY_FILE",
                f"{config.jwt_public_key_file} is not a PEM public key ({exc})",
            ) from None
