"""The benchmark's own parts: its requests are orders the service accepts, each once, and
its statistics and profile summary say what they should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import corpus, procs, profiling, writer_batches
from bench.stats import percentile
from service.config import Config


@pytest.mark.parametrize("endpoint", ["initials", "oneclick", "me_order"])
async def test_corpus_requests_are_accepted_orders(
    client: Any, config: Config, endpoint: str
) -> None:
    assert config.jwt_secret is not None
    build = corpus.builder_for(endpoint, corpus.new_run_tag(), config.jwt_secret)
    bodies = set()
    for n in range(3):
        request = build(n)
        bodies.add(request.body)
        response = await client.post(request.path, data=request.body, headers=request.headers)
        assert response.status == 200, await response.text()
    assert len(bodies) == 3


async def test_a_corpus_request_sent_twice_is_refused_as_a_replay(
    client: Any, config: Config
) -> None:
    request = corpus.builder_for("initials", corpus.new_run_tag(), "unused")(0)
    first = await client.post(request.path, data=request.body, headers=request.headers)
    again = await client.post(request.path, data=request.body, headers=request.headers)
    assert (first.status, again.status) == (200, 409)


def test_corpus_files_split_requests_over_threads(tmp_path: Path) -> None:
    build = corpus.builder_for("floor", "t", "unused")
    paths = corpus.write_corpus(tmp_path / "c", build, 5, 2, "127.0.0.1:1")
    requests = [r for p in paths for r in p.read_bytes().split(corpus.SEPARATOR) if r]
    assert len(requests) == 5
    assert len(set(requests)) == 5
    assert all(r.startswith(b"POST /floor/order HTTP/1.1\r\n") for r in requests)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_profile_summary_shares(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        'process 1:"x";main (service/cli.py);handle (aiohttp/web.py);load (marshmallow/s.py) 3\n'
        'process 1:"x";main (service/cli.py);handle (aiohttp/web.py) 1\n'
    )
    spots = profiling.summarize(raw)
    assert spots.samples == 4
    assert dict(spots.self_by_package) == {"marshmallow": 75.0, "aiohttp": 25.0}
    assert dict(spots.self_by_function)["load (marshmallow/s.py)"] == 75.0


def test_cpu_of_an_exited_child_still_counts() -> None:
    # A PostgreSQL backend that exits mid-run must not take its CPU out of the figures.
    before = procs.cpu_seconds(os.getpid())
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert procs.cpu_seconds(os.getpid()) - before >= 0.25


def test_run_queue_wait_of_processes_that_outnumber_the_cores() -> None:
    # One CPU burner more than there are cores: between them they wait for a core.
    burn = (
        "import sys, time\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\nprint('burned', flush=True)\nsys.stdin.read()"
    )
    burners = [
        subprocess.Popen(
            [sys.executable, "-c", burn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        before = procs.run_queue_seconds(os.getpid())
        for burner in burners:
            assert burner.stdout is not None
            assert burner.stdout.readline() == "burned\n"
        waited = procs.run_queue_seconds(os.getpid()) - before
    finally:
        for burner in burners:
            burner.communicate("")
    assert waited >= 0.05


def test_mean_write_batch_from_the_service_metrics() -> None:
    page = (
        "# TYPE order_service_order_write_batch_size histogram\n"
        'order_service_order_write_batch_size_bucket{le="1.0"} 2.0\n'
        "order_service_order_write_batch_size_count 10.0\n"
        "order_service_order_write_batch_size_sum 120.0\n"
        "order_service_order_write_batch_size_created 1.7e+09\n"
    )
    before = writer_batches.parse_totals(page)
    after = writer_batches.parse_totals(
        page.replace("_count 10.0", "_count 14.0").replace("_sum 120.0", "_sum 184.0")
    )
    assert before == (120.0, 10.0)
    assert writer_batches.mean_batch(before, after) == 16.0
    assert writer_batches.mean_batch(after, after) is None
    assert writer_batches.parse_totals("# nothing here\n") is None
