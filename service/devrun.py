"""`make run`: the whole service on a fresh machine, in one command.

Migrates (creating the database), loads the demo catalog and serves on PORT (8080).
When DATABASE_URL is not set and nothing answers at the default URL, it starts an
embedded PostgreSQL from the `pgserver` package (extra `embedded`) with its data in
.data/pgdata, so a person with only Python can try the API. With no broker reachable the
service still starts and takes orders; their events wait in the outbox until one is.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import structlog

from service.catalog_load import CatalogFileError, load_catalog_file
from service.cli import config_or_exit
from service.config import redact_url
from service.db import database_name, with_database
from service.logs import configure_logging
from service.migrations import migrate
from service.outside_failures import OUTSIDE_FAILURES, describe
from service.server import serve

log = structlog.get_logger("order-service.devrun")

ROOT = Path(__file__).resolve().parent.parent
DEMO_CATALOG = ROOT / "examples" / "demo-catalog.json"
EMBEDDED_PGDATA = ROOT / ".data" / "pgdata"


class EmbeddedPostgresUnavailable(RuntimeError):
    """The `embedded` extra is not installed, or its server would not start."""


async def database_reachable(url: str) -> bool:
    """True when a PostgreSQL server answers at the URL's address.

    Any answer from the server counts, even "database does not exist" or an
    authentication failure: those are for `migrate` to report, not a reason to start
    another server. Only a connection that cannot be made at all means unreachable.
    """
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError):
        return False
    except asyncpg.PostgresError:
        return True
    await conn.close()
    return True


def start_embedded_postgres(pgdata: Path, database: str) -> tuple[str, Any]:
    """Starts (or reuses) the embedded server; returns its URL for `database` and the
    server handle, which stops the server when this process exits."""
    try:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir at import; without
            # XDG_RUNTIME_DIR it warns and falls back to /tmp, which is fine here.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
    except ImportError as exc:
        raise EmbeddedPostgresUnavailable(
            "PostgreSQL is not reachable and the embedded one is not installed: "
            "run `.venv/bin/pip install -e '.[embedded]'` or set DATABASE_URL"
        ) from exc
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Unix socket only; as root, pgserver runs the server as a `pgserver` system user.
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises whatever initdb or pg_ctl raised
        raise EmbeddedPostgresUnavailable(f"the embedded PostgreSQL did not start: {exc}") from exc
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:  # Windows: pgserver listens on a local TCP port instead
        return with_database(server.get_uri(), database), server
    # asyncpg takes a Unix socket directory as the `host` query parameter.
    url = f"postgresql://postgres@/{quote(database)}?host={quote(str(socket_dir))}"
    return url, server


def main() -> int:
    config = config_or_exit()
    configure_logging(config.log_level, config.log_format)
    embedded: Any = None  # held until exit: the handle stops the server at exit
    if not config.database_url_explicit and not asyncio.run(
        database_reachable(config.database_url)
    ):
        log.warning(
            "database_unreachable_starting_embedded",
            dsn=config.database_url_redacted,
            pgdata=str(EMBEDDED_PGDATA),
        )
        try:
            url, embedded = start_embedded_postgres(
                EMBEDDED_PGDATA, database_name(config.database_url)
            )
        except EmbeddedPostgresUnavailable as exc:
            log.error("embedded_postgres_unavailable", error=str(exc))
            return 1
        log.warning("embedded_postgres_started", dsn=redact_url(url), pgdata=str(EMBEDDED_PGDATA))
        config = replace(config, database_url=url)
    try:
        applied = asyncio.run(migrate(config.database_url))
        log.info("migrations_done", applied=applied)
        summary = asyncio.run(load_catalog_file(config.database_url, DEMO_CATALOG))
    except CatalogFileError as exc:
        log.error("demo_catalog_refused", error=str(exc))
        return 1
    except OUTSIDE_FAILURES as exc:
        # As the order-service commands report it: one line, the password masked.
        log.error(
            "command_failed",
            command="run",
            error=describe(exc),
            database=config.database_url_redacted,
        )
        return 1
    log.info("demo_catalog_loaded", file=str(DEMO_CATALOG), **summary)
    log.info("serving", host=config.host, port=config.port)
    status = serve(config, migrate_first=False)
    del embedded
    return status


if __name__ == "__main__":
    raise SystemExit(main())
