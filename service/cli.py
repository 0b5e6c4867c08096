"""The `order-service` command line."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from service.config import Config, ConfigError, load_config
from service.logs import configure_logging
from service.outside_failures import OUTSIDE_FAILURES, describe

if TYPE_CHECKING:
    from events.broker import Broker

T = TypeVar("T")

log = structlog.get_logger("order-service")


def config_or_exit() -> Config:
    """The configuration, or exit status 2 with a message naming the bad variable."""
    try:
        return load_config()
    except ConfigError as exc:
        print(f"order-service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_migrate(config: Config, _args: argparse.Namespace) -> int:
    from service.migrations import migrate

    async def go() -> None:
        applied = await migrate(config.database_url)
        log.info("migrations_done", applied=applied)

    _run(go())
    return 0


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from service.server import serve

    return serve(config, workers=args.workers, migrate_first=not args.no_migrate)


def cmd_catalog_load(config: Config, args: argparse.Namespace) -> int:
    from service.catalog_load import CatalogFileError, load_catalog_file

    async def go() -> None:
        summary = await load_catalog_file(config.database_url, Path(args.file))
        log.info("catalog_loaded", file=args.file, **summary)

    try:
        _run(go())
    except CatalogFileError as exc:
        print(f"order-service: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_sign(_config: Config, args: argparse.Namespace) -> int:
    from service.auth.signing import signed_headers

    body = args.body.encode() if args.body is not None else b""
    if args.body_file:
        body = Path(args.body_file).read_bytes()
    headers = signed_headers(
        args.public_key,
        args.secret,
        args.method,
        args.path,
        body,
        buyer_ip=args.buyer_ip,
        source=args.source,
        source_id=args.source_id,
        ga_client_id=args.ga_client_id or None,
    )
    # Quoted for the shell: the README reads the line with eval, and a value (a source
    # id, say) may hold a quote.
    print(" ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items()))
    return 0


def cmd_token(config: Config, args: argparse.Namespace) -> int:
    from service.auth.bearer import mint_token

    try:
        print(mint_token(config, sub=args.sub, org=args.org, scope=args.scope, ttl=args.ttl))
    except ValueError as exc:
        print(f"order-service: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_relay(config: Config, _args: argparse.Namespace) -> int:
    from events.relay import run_relay_forever
    from service.relay_http import RelayProbes, relay_http

    # The probes and metrics answer until the relay has stopped (SIGTERM: after its batch
    # in flight).
    probes = RelayProbes()

    def on_broker(broker: Broker) -> None:
        probes.broker = broker

    _run(run_relay_forever(config, serving=relay_http(config, probes), on_broker=on_broker))
    return 0


def cmd_events_tail(config: Config, args: argparse.Namespace) -> int:
    from events.tail import events_waiting_for_a_queue, tail

    if not args.take_backlog:
        waiting = _run(events_waiting_for_a_queue(config.database_url, args.binding))
        if waiting is None:
            print(
                "order-service: could not ask the database (DATABASE_URL) whether events "
                "wait for a first queue; the tail's queue would take any that do. Fix "
                "DATABASE_URL, or pass --take-backlog.",
                file=sys.stderr,
            )
            return 2
        if waiting:
            print(
                f"order-service: {waiting} events wait in the outbox for a first queue "
                "bound for them; the tail's queue would take them, and a consumer bound "
                "later would never get them. Bind the consumers' queues first, or pass "
                "--take-backlog.",
                file=sys.stderr,
            )
            return 2
    _run(tail(config, binding=args.binding, limit=args.limit))
    return 0


CONFIGURED = (
    "Settings come from the environment (DATABASE_URL, AMQP_URL, ...; README.md, "
    "Configuration); a bad value exits 2 naming the variable. A database or broker that "
    "cannot be reached exits 1 (command_failed)."
)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, details: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help gives what it does, then how it is configured."""
    return sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. {details}",
        epilog=CONFIGURED,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="order-service", description=__doc__, epilog=CONFIGURED)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = _command(
        sub,
        "serve",
        "run the HTTP service (and the outbox relay)",
        "Applies pending migrations, then serves HOST:PORT until SIGTERM or SIGINT, which "
        "stops it gracefully within SHUTDOWN_TIMEOUT. Exits 0 after a clean stop, 1 when "
        "it could not start or its stop had to give something up (shutdown_unclean).",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes on one port (default: WORKERS, else one per usable CPU)",
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    serve.set_defaults(func=cmd_serve)

    _command(
        sub,
        "migrate",
        "apply pending migrations",
        "Creates the database if missing and applies sql/migrations/ in order, each in "
        "its own transaction; concurrent runs wait for each other.",
    ).set_defaults(func=cmd_migrate)

    catalog = sub.add_parser("catalog", help="catalog commands")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    load = _command(
        catalog_sub,
        "load",
        "load merchants and their catalog from JSON",
        "Validates the file and upserts it in one transaction; running instances reload "
        "their catalog at once. A bad file is refused whole, every bad entry named, "
        "status 1.",
    )
    load.add_argument("file", help="a catalog file (README.md, Catalog file)")
    load.set_defaults(func=cmd_catalog_load)

    sign = _command(
        sub,
        "sign",
        "print signed merchant headers, ready for curl -H",
        "Prints the x-* headers of one request, its x-token signed with the key's secret "
        "over this method, path and body at the current time, each shell-quoted for "
        'eval "curl ... $(order-service sign ...)". The service takes it within '
        "SIGNATURE_WINDOW_SECONDS of its x-date.",
    )
    sign.add_argument("--public-key", required=True, help="the merchant key's public part")
    sign.add_argument("--secret", required=True, help="the merchant key's secret")
    sign.add_argument("--method", default="POST", help="HTTP method (default: %(default)s)")
    sign.add_argument("--path", required=True, help="path and query, e.g. /api/v2/initials/url")
    sign.add_argument("--body", help="the exact body that will be sent (default: none)")
    sign.add_argument("--body-file", help="read the exact body from this file")
    sign.add_argument(
        "--buyer-ip", default="203.0.113.10", help="x-buyer-ip (default: %(default)s)"
    )
    sign.add_argument("--source", default="web", help="x-source (default: %(default)s)")
    sign.add_argument("--source-id", default="checkout", help="x-id (default: %(default)s)")
    sign.add_argument(
        "--ga-client-id",
        default="GA1.2.1234567890.1700000000",
        help="x-google-analytics-client-id; empty: no such header (default: %(default)s)",
    )
    sign.set_defaults(func=cmd_sign)

    token = _command(
        sub,
        "token",
        "mint a Bearer token with JWT_SECRET (development)",
        "Prints a token POST /external/api/v1/me/order accepts, signed with JWT_SECRET "
        "and the first HS* algorithm of JWT_ALGORITHMS; refuses, status 2, without "
        "either.",
    )
    token.add_argument("--sub", required=True, help="the customer account")
    token.add_argument("--org", required=True, help="the merchant code")
    token.add_argument(
        "--scope", default="/external/me/order/w", help="the token's scope (default: %(default)s)"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default: %(default)s)"
    )
    token.set_defaults(func=cmd_token)

    _command(
        sub,
        "relay",
        "run only the outbox relay (probes and metrics on RELAY_HTTP_PORT)",
        "Publishes the outbox's events to EVENTS_EXCHANGE until SIGTERM, for a `serve` "
        "started with RELAY_ENABLED=false. Exits 1 when RELAY_HTTP_PORT cannot be bound.",
    ).set_defaults(func=cmd_relay)

    events = sub.add_parser("events", help="event commands")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = _command(
        events_sub,
        "tail",
        "print order events as JSON lines",
        "Binds a temporary queue to EVENTS_EXCHANGE and prints each event it gets. "
        "Refuses, status 2, while events its binding matches wait in the outbox for a "
        "first queue (its queue would take them from the consumers bound later), or "
        "when it cannot ask the database, unless --take-backlog.",
    )
    tail.add_argument(
        "--binding",
        default="order.created",
        help="routing key pattern, as a topic binding (default: %(default)s)",
    )
    tail.add_argument(
        "--limit", type=_positive_int, default=None, help="stop after this many events"
    )
    tail.add_argument(
        "--take-backlog",
        action="store_true",
        help="tail even while events wait for a first queue (they go to the tail alone)",
    )
    tail.set_defaults(func=cmd_events_tail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_or_exit()
    configure_logging(config.log_level, config.log_format)
    try:
        result: int = args.func(config, args)
    except OUTSIDE_FAILURES as exc:
        log.error(
            "command_failed", command=args.command, error=describe(exc), **_where(exc, config)
        )
        return 1
    return result


def _where(exc: BaseException, config: Config) -> dict[str, str]:
    """What the failure was with, for the operator: RabbitMQ's address, a file's name, or
    the database's (redacted) address; naming the database for a broker that cannot be
    reached sent them looking at PostgreSQL."""
    import aiormq

    if isinstance(exc, aiormq.exceptions.AMQPError):
        return {"broker": config.amqp_url_redacted}
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename is not None:
        return {"file": str(filename)}
    return {"database": config.database_url_redacted}


if __name__ == "__main__":
    raise SystemExit(main())
