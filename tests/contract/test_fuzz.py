"""Schemathesis against the live service: the service runs as a subprocess on a database
of its own (the demo catalog), and the schemathesis CLI fuzzes every operation of
/openapi.json with signed merchant requests and Bearer tokens (tests/contract/fuzz_hooks.py).

Checks: no 5xx, and every response conforms to the document (status code, content type,
headers, body schema). Bounded by FUZZ_MAX_EXAMPLES per operation and a fixed seed, so a
CI run is reproducible and takes well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.auth.bearer import mint_token
from service.catalog_load import load_catalog_file
from service.config import Config
from service.db import with_database
from service.migrations import migrate
from tests.conftest import ADMIN_URL, DEMO_CATALOG, EYEZY_KEY, ROOT
from tests.support.service_process import ServiceProcess, service_env

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "60"))
SEED = os.environ.get("FUZZ_SEED", "20261124")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
RUN_TIMEOUT = 240.0


@pytest.fixture
async def fuzz_database(run_id: str) -> AsyncIterator[str]:
    """A database of the fuzz run alone: the orders it makes touch no other test's data."""
    name = f"order_service_fuzz_{run_id}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(ADMIN_URL, name)
    try:
        await migrate(url)
        await load_catalog_file(url, DEMO_CATALOG)
        yield url
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def save_document(base_url: str, path: Path) -> None:
    """The served document, as a file: schemathesis does not test the operation that serves
    the schema it loaded by URL, and GET /openapi.json is one to test too."""
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/openapi.json") as got:
        assert got.status == 200
        path.write_bytes(await got.read())


async def run_schemathesis(base_url: str, config: Config, workdir: Path) -> tuple[int, str]:
    """Runs the CLI in `workdir` (it keeps a .schemathesis cache in its working directory);
    its JSON report is workdir/schemathesis.json."""
    document = workdir / "openapi.json"
    await save_document(base_url, document)
    token = mint_token(config, sub="fuzz-customer", org="adeprimo", ttl=3600)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.fuzz_hooks",
        "PYTHONPATH": str(ROOT),
        "FUZZ_PUBLIC_KEY": EYEZY_KEY[0],
        "FUZZ_SECRET": EYEZY_KEY[1],
        "FUZZ_BEARER_TOKEN": token,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(document),
        "--url",
        base_url,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(workdir / "schemathesis.json"),
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.timeout(RUN_TIMEOUT + 60)
async def test_schemathesis_finds_no_failures(
    base_config: Config,
    fuzz_database: str,
    run_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = replace(base_config, database_url=fuzz_database, events_exchange=f"fuzz_{run_id}")
    service = ServiceProcess(["serve", "--no-migrate"], service_env(config))
    await service.start()
    try:
        port = await service.serving_port()
        exit_code, output = await run_schemathesis(f"http://127.0.0.1:{port}", config, tmp_path)
    finally:
        await service.stop()
    report: dict[str, Any] = json.loads((tmp_path / "schemathesis.json").read_text())
    operations, cases = report["operations"], report["test_cases"]
    with capsys.disabled():
        print(
            f"\nschemathesis: {operations['tested']} operations tested of {operations['total']},"
            f" {cases['generated']} cases generated, {cases['with_failures']} with failures,"
            f" {len(report['errors'])} errors (seed {report['seed']})"
        )
    assert exit_code == 0, output
    assert operations["tested"] == operations["total"] > 0, output
    assert cases["with_failures"] == 0 and not report["failures"], output
    assert not report["errors"], output
    # The service never logged an unhandled error, whatever schemathesis saw.
    crashes = [e for e in service.events if e.get("event") == "unhandled_error"]
    assert not crashes, crashes
