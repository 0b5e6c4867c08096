"""`make bench`: the service against the floor, side by side, in one run on this machine.

Starts fresh databases (migrated, demo catalog), the floor app and the service in
production settings, proves the load generator is not the bottleneck, drives each create
endpoint with wrk between floor runs, measures event lag, relay drain and `--workers 2`,
and writes bench/results/<timestamp>.json and .md (the table is printed too).

    make bench
    make bench BENCH_ARGS="--endpoints initials --duration 5 --skip-events --skip-workers"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench import corpus, database, events_bench, procs, profiling, report, writer_batches
from bench.loadgen import LoadResult, ensure_wrk, run_wrk
from bench.stats import mean, ratio

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ENDPOINTS = ("initials", "oneclick", "me_order")
DEFAULT_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # the Makefile's default
RELAY_DRAIN = Path(__file__).with_name("relay_drain.py")
DRAIN_LINE = re.compile(
    r"drain: (?P<events>\d+) events .*? in (?P<seconds>[\d.]+) s \((?P<rate>[\d,.]+)/s\)"
    r".*?queue depth (?P<depth>\d+)"
)
FIRST_GUESS_RPS = 4000.0
WORKERS_2 = "initials --workers 2"  # sizes the warm-up corpus before any rate is known


@dataclass
class Bench:
    """What one benchmark run has set up, and what it has measured so far."""

    args: argparse.Namespace
    work: Path
    tag: str
    wrk: str
    service_db: str
    floor_db: str
    exchange: str
    jwt_secret: str
    floor: procs.Managed | None = None
    service: procs.Managed | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    rate_guess: dict[str, float] = field(default_factory=dict)
    ready: list[tuple[str, float]] = field(default_factory=list)
    ping_port: int = 0

    @property
    def sink(self) -> str:
        """A queue bound to the bench's exchange, standing for the consumers of production."""
        return f"{self.exchange}_sink"

    def service_env(self, port: int, workers: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.service_db,
            AMQP_URL=self.args.amqp_url,
            HOST="127.0.0.1",
            PORT=str(port),
            WORKERS=str(workers),
            LOG_LEVEL="info",
            LOG_FORMAT="json",
            METRICS_ENABLED="true",
            RELAY_ENABLED="true",
            MIGRATE_ON_START="true",
            EVENTS_EXCHANGE=self.exchange,
            JWT_SECRET=self.jwt_secret,
        )
        return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_service(bench: Bench, workers: int) -> procs.Managed:
    port = free_port()
    managed = procs.start(
        f"service-w{workers}",
        [str(Path(sys.executable).with_name("order-service")), "serve"],
        port=port,
        env=bench.service_env(port, workers),
        log_dir=bench.work,
        ready_path="/health/ready",
    )
    bench.ready.append((f"WORKERS={workers}", managed.ready_seconds))
    print(
        f"bench: service ({workers} worker(s)) ready in {managed.ready_seconds:.2f} s", flush=True
    )
    return managed


def start_floor(bench: Bench) -> procs.Managed:
    port, ping_port = free_port(), free_port()
    command = [sys.executable, "-m", "bench.floor", "--port", str(port)]
    command += ["--database-url", bench.floor_db, "--ping-port", str(ping_port)]
    managed = procs.start(
        "floor", command, port=port, env=os.environ, log_dir=bench.work, ready_path="/floor/ping"
    )
    bench.ping_port = ping_port
    return managed


def drive(
    bench: Bench, target: str, server: procs.Managed, seconds: float, count: int
) -> LoadResult:
    """One wrk run of `seconds` over a fresh corpus of `count` requests."""
    build = corpus.builder_for(target, corpus.new_run_tag(), bench.jwt_secret)
    host = f"127.0.0.1:{server.port}"
    prefix = bench.work / f"corpus-{target}"
    corpus.write_corpus(prefix, build, count, bench.args.threads, host)
    try:
        return run_wrk(
            server.url(),
            corpus_prefix=prefix,
            seconds=seconds,
            connections=bench.args.connections,
            threads=bench.args.threads,
            wrk=bench.wrk,
        )
    finally:
        for stale in bench.work.glob(f"corpus-{target}.*"):
            stale.unlink()


def measure(
    bench: Bench, target: str, server: procs.Managed, label: str | None = None
) -> dict[str, Any]:
    """Warm-up, then a measured run with CPU and RSS of the server around it."""
    args = bench.args
    guess = bench.rate_guess.get(target, FIRST_GUESS_RPS)
    warm = drive(bench, target, server, args.warmup, int(guess * args.warmup * 1.5) + 500)
    bench.rate_guess[target] = max(warm.rps, 100.0)
    for attempt in range(2):
        count = int(bench.rate_guess[target] * args.duration * (1.6 + attempt)) + 1000
        cpu_before = procs.cpu_seconds(server.pid)
        waited_before = procs.run_queue_seconds(server.pid)
        batches_before = writer_batches.totals(server.url("/metrics"))
        groups_before, busy_before = procs.cpu_by_group(), procs.machine_busy_seconds()
        wall_before = time.perf_counter()
        result = drive(bench, target, server, args.duration, count)
        wall = time.perf_counter() - wall_before
        busy = procs.machine_busy_seconds() - busy_before
        groups = {k: v - groups_before[k] for k, v in procs.cpu_by_group().items()}
        cpu = procs.cpu_seconds(server.pid) - cpu_before
        waited = procs.run_queue_seconds(server.pid) - waited_before
        batches_after = writer_batches.totals(server.url("/metrics"))
        if not result.exhausted:
            break
        bench.rate_guess[target] = result.rps  # the corpus ran out: size it anew, once
    rss = procs.rss_mb(server.pid)
    run = {
        "target": label or target,
        **result.as_dict(),
        "warmup_rps": round(warm.rps, 1),
        "warmup_errors": warm.errors,
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_request": round(1000 * cpu / result.requests, 3) if result.requests else None,
        # Where the machine's CPU went while this run was driven (wrk's start included).
        "machine_cpu_ms_per_request": {
            "server": per_request(cpu, result.requests),
            **{group: per_request(seconds, result.requests) for group, seconds in groups.items()},
            "load generator": per_request(result.wrk_cpu_seconds, result.requests),
            "whole machine": per_request(busy, result.requests),
        },
        "machine_busy_cores": round(busy / wall, 2) if wall else None,
        # The server's processes: on a core, and ready to run but waiting for one.
        "server_cpu_cores": round(cpu / wall, 2) if wall else None,
        "server_run_queue_cores": round(waited / wall, 2) if wall else None,
        "rss_mb": {str(pid): round(mb, 1) for pid, mb in rss.items()},
        "mean_write_batch": writer_batches.mean_batch(batches_before, batches_after),
    }
    bench.runs.append(run)
    print(
        f"bench: {run['target']:>12}: {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  p99.9 {result.p999_ms:6.2f} ms  errors {result.errors}"
        + (f"  mean batch {run['mean_write_batch']:.1f}" if run["mean_write_batch"] else ""),
        flush=True,
    )
    if result.errors:
        print(f"bench:   first error: {result.first_error[:300]}", flush=True)
    return run


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def per_request(seconds: float, requests: int) -> float | None:
    return round(1000 * seconds / requests, 3) if requests else None


def loadgen_check(bench: Bench) -> dict[str, Any]:
    """wrk against the floor's plain JSON GET, through aiohttp and from the bare protocol:
    the request rate the generator can make, and the CPU it spends per request."""
    assert bench.floor is not None
    found: dict[str, Any] = {}
    for name, url in (
        ("aiohttp", bench.floor.url("/floor/ping")),
        ("bare", f"http://127.0.0.1:{bench.ping_port}/floor/ping"),
    ):
        result = run_wrk(
            url,
            corpus_prefix=None,
            seconds=bench.args.ping_seconds,
            connections=bench.args.connections,
            threads=bench.args.threads,
            wrk=bench.wrk,
        )
        found[name] = result.as_dict()
        print(
            f"bench: load generator, GET /floor/ping ({name}): {result.rps:.0f} req/s, "
            f"wrk busy {result.wrk_cpu_per_second:.2f} cores",
            flush=True,
        )
    bare = found["bare"]
    # Requests wrk can make per second of one core, from what it spent on the bare GETs.
    found["wrk_capacity_per_core"] = (
        bare["requests"] / bare["wrk_cpu_seconds"] if bare["wrk_cpu_seconds"] else math.nan
    )
    return found


def throughput_rounds(bench: Bench, endpoints: list[str]) -> None:
    """floor, e1, floor, e2, floor, ... (`--rounds` times): each endpoint run has a floor
    run on both sides."""
    assert bench.floor is not None and bench.service is not None
    measure(bench, "floor", bench.floor)
    for _ in range(bench.args.rounds):
        for endpoint in endpoints:
            measure(bench, endpoint, bench.service)
            measure(bench, "floor", bench.floor)


def compare_with_floor(runs: list[dict[str, Any]]) -> None:
    """Sets each endpoint run's ratios to the mean of the floor runs right around it."""
    for i, run in enumerate(runs):
        if run["target"] == "floor":
            continue
        around = [runs[j] for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        floors = [r for r in around if r["target"] == "floor"]
        run["floor_rps"] = mean([r["rps"] for r in floors])
        run["floor_p99_ms"] = mean([r["p99_ms"] for r in floors])
        run["rps_vs_floor"] = ratio(run["rps"], run["floor_rps"])
        run["p99_vs_floor"] = ratio(run["p99_ms"], run["floor_p99_ms"])


def summarize(bench: Bench) -> dict[str, dict[str, Any]]:
    """One row per target: means over its runs (one run per round)."""
    compare_with_floor(bench.runs)
    runs = [r for r in bench.runs if r["target"] in ("floor", *ENDPOINTS)]
    summary: dict[str, dict[str, Any]] = {}
    for target in ("floor", *ENDPOINTS):
        mine = [r for r in runs if r["target"] == target]
        if not mine:
            continue

        def avg(key: str, of: list[dict[str, Any]] = mine) -> float:
            return mean([_or_nan(r.get(key)) for r in of])

        row: dict[str, Any] = {
            "runs": len(mine),
            "rps": avg("rps"),
            "p50_ms": avg("p50_ms"),
            "p99_ms": avg("p99_ms"),
            "p999_ms": avg("p999_ms"),
            "errors": sum(r["errors"] for r in mine),
            "cpu_ms_per_request": avg("cpu_ms_per_request"),
            "machine_cpu_ms_per_request": {
                part: mean([_or_nan(r["machine_cpu_ms_per_request"][part]) for r in mine])
                for part in mine[0]["machine_cpu_ms_per_request"]
            },
            "machine_busy_cores": avg("machine_busy_cores"),
            "server_cpu_cores": avg("server_cpu_cores"),
            "server_run_queue_cores": avg("server_run_queue_cores"),
            "mean_write_batch": avg("mean_write_batch"),
            "rss_mb": max(max(r["rss_mb"].values()) for r in mine),
        }
        if target == "floor":
            row.update(rps_vs_floor=1.0, p99_vs_floor=1.0)
        else:
            row.update(
                floor_rps=avg("floor_rps"),
                floor_p99_ms=avg("floor_p99_ms"),
                rps_vs_floor=avg("rps_vs_floor"),
                p99_vs_floor=avg("p99_vs_floor"),
            )
            row["meets_target"] = (
                row["errors"] == 0
                and row["rps_vs_floor"] >= report.MIN_RPS_RATIO
                and row["p99_vs_floor"] <= report.MAX_P99_RATIO
            )
        summary[target] = row
    return summary


def workers_runs(bench: Bench) -> None:
    """initials with `WORKERS=2` between two floor runs, then the single worker again."""
    assert bench.service is not None and bench.floor is not None
    procs.stop(bench.service)
    bench.service = start_service(bench, workers=2)
    measure(bench, "initials", bench.service, label=WORKERS_2)
    measure(bench, "floor", bench.floor)
    if relay_available():
        uvloop.run(events_bench.wait_for_drained(bench.service_db, timeout=180))
    procs.stop(bench.service)
    bench.service = start_service(bench, workers=1)


def workers_figures(bench: Bench) -> dict[str, Any] | None:
    """Two workers against one, raw and with each divided by the floor runs around it
    (the runs are minutes apart; the floor takes the drift out)."""
    one = [r for r in bench.runs if r["target"] == "initials"]
    two = [r for r in bench.runs if r["target"] == WORKERS_2]
    if not one or not two:
        return None
    rps_1, rps_2 = mean([r["rps"] for r in one]), two[0]["rps"]
    vs_floor_1 = mean([r["rps_vs_floor"] for r in one])
    return {
        "rps_1": rps_1,
        "rps_2": rps_2,
        "ratio": ratio(rps_2, rps_1),
        "rps_vs_floor_1": vs_floor_1,
        "rps_vs_floor_2": two[0]["rps_vs_floor"],
        "ratio_floor_adjusted": ratio(two[0]["rps_vs_floor"], vs_floor_1),
    }


def relay_available() -> bool:
    try:
        import events.relay  # noqa: F401
    except ImportError:
        return False
    return True


def event_figures(bench: Bench) -> dict[str, Any]:
    """Lag at a steady rate (service running), after the throughput backlog is sent."""
    assert bench.service is not None
    args = bench.args
    backlog_wait = uvloop.run(events_bench.wait_for_drained(bench.service_db, timeout=180))
    print(f"bench: outbox drained {backlog_wait:.1f} s after the throughput runs", flush=True)
    lag = events_bench.measure_lag(
        service_url=bench.service.url(),
        database_url=bench.service_db,
        amqp_url=args.amqp_url,
        exchange=bench.exchange,
        rate=args.lag_rate,
        seconds=args.lag_seconds,
        run=corpus.new_run_tag(),
        work_dir=bench.work,
    )
    lag["backlog_wait_s"] = round(backlog_wait, 2)
    print(f"bench: event lag {lag}", flush=True)
    return lag


def relay_drain_script(events: int) -> dict[str, Any] | None:
    """bench/relay_drain.py of the events area (its own database, exchange and in-process
    relay), parsed from its `drain: N events ... in S s (R/s) ... queue depth D` line."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.relay_drain", "--events", str(events)),
            *("--lag-events", "20", "--rate", "50"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    match = DRAIN_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        print(f"bench: bench/relay_drain.py failed: {(done.stderr or done.stdout)[-400:]}")
        return None
    return {
        "by": "bench/relay_drain.py",
        "events": int(match["events"]),
        "seconds": float(match["seconds"]),
        "events_per_s": float(match["rate"].replace(",", "")),
        "received": int(match["depth"]),
        "output": done.stdout.strip(),
    }


def drain_figures(bench: Bench) -> dict[str, Any]:
    """The relay's drain of a backlog: bench/relay_drain.py when the events area provides
    it; otherwise `order-service relay` on the bench database with the service stopped."""
    if RELAY_DRAIN.exists():
        found = relay_drain_script(bench.args.drain_events)
        if found is not None:
            print(f"bench: relay drain {found['events_per_s']:,.0f} events/s", flush=True)
            return found
    uvloop.run(events_bench.wait_for_drained(bench.service_db, timeout=180))
    drain = events_bench.measure_drain(
        relay_command=[str(Path(sys.executable).with_name("order-service")), "relay"],
        env=bench.service_env(0, 1),
        database_url=bench.service_db,
        amqp_url=bench.args.amqp_url,
        exchange=bench.exchange,
        events=bench.args.drain_events,
        work_dir=bench.work,
    )
    print(f"bench: relay drain {drain}", flush=True)
    return drain


def profile(bench: Bench, endpoint: str) -> str:
    """py-spy on the single-worker service during an extra run of `endpoint`."""
    assert bench.service is not None
    py_spy = profiling.ensure_py_spy()
    raw = bench.work / f"profile-{endpoint}.txt"
    args = bench.args
    guess = bench.rate_guess.get(endpoint, FIRST_GUESS_RPS)
    drive(bench, endpoint, bench.service, args.warmup, int(guess * args.warmup * 1.5) + 500)
    recorder = profiling.start_recording(py_spy, bench.service.pid, args.duration, raw)
    count = int(guess * args.duration * 1.6) + 1000
    result = drive(bench, endpoint, bench.service, args.duration, count)
    _, err = recorder.communicate(timeout=60)
    if not raw.exists():
        return f"Profile failed: {err.decode(errors='replace')[-500:]}"
    shutil.copy(raw, RESULTS / f"{bench.tag}.profile-{endpoint}.txt")
    spots = profiling.summarize(raw)
    return (
        f"## Profile of {endpoint} under load ({result.rps:.0f} req/s while sampled)\n\n"
        + profiling.markdown(spots)
    )


def figures(bench: Bench, result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    gen = result["loadgen"]
    top_order_rps = max((r["rps"] for r in bench.runs), default=math.nan)
    bare_ratio = ratio(gen["bare"]["rps"], top_order_rps)
    out.append((
        "load generator: GET /floor/ping req/s, bare protocol (x fastest order run)",
        f"{gen['bare']['rps']:,.0f} ({bare_ratio:.1f}x)",
        f">= {report.MIN_LOADGEN_RATIO:.0f}x",
        bare_ratio >= report.MIN_LOADGEN_RATIO,
    ))  # fmt: skip
    out.append((
        "load generator: GET /floor/ping req/s, through aiohttp",
        f"{gen['aiohttp']['rps']:,.0f} ({ratio(gen['aiohttp']['rps'], top_order_rps):.1f}x)",
        "(server-bound)",
        None,
    ))  # fmt: skip
    busiest = max((r["wrk_cores_busy"] for r in bench.runs), default=math.nan)
    capacity_ratio = ratio(gen["wrk_capacity_per_core"], top_order_rps)
    out.append((
        "wrk requests per CPU-second (x fastest order run); busiest order run",
        f"{gen['wrk_capacity_per_core']:,.0f} ({capacity_ratio:.1f}x); {busiest:.2f} cores",
        f">= {report.MIN_LOADGEN_RATIO:.0f}x",
        capacity_ratio >= report.MIN_LOADGEN_RATIO,
    ))  # fmt: skip
    workers = result.get("workers")
    if workers:
        out.append((
            "initials req/s, --workers 2 vs 1 (raw; floor-adjusted)",
            f"{workers['rps_2']:,.0f} vs {workers['rps_1']:,.0f} "
            f"({workers['ratio']:.2f}x; {workers['ratio_floor_adjusted']:.2f}x)",
            "> 1x",
            workers["ratio_floor_adjusted"] > 1.0,
        ))  # fmt: skip
    lag = result.get("lag")
    if lag:
        out.append((
            f"event lag commit->consumer p50 / p99 at {lag['rate']:.0f} orders/s",
            f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} ms "
            f"({lag['received']}/{lag['sent']} received; commit to the relay's claim "
            f"{lag['until_claim_p50_ms']:.1f} / {lag['until_claim_p99_ms']:.1f}, claim to "
            f"consumer {lag['after_claim_p50_ms']:.1f} / {lag['after_claim_p99_ms']:.1f})",
            f"p99 < {report.MAX_LAG_P99_MS:.0f} ms",
            lag["p99_ms"] < report.MAX_LAG_P99_MS and lag["received"] >= lag["sent"],
        ))  # fmt: skip
    drain = result.get("drain")
    if drain:
        out.append((
            f"relay drain of a {drain['events']:,} event backlog",
            f"{drain['events_per_s']:,.0f} events/s ({drain['received']:,} received)",
            f">= {report.MIN_DRAIN_PER_S:,.0f}/s",
            drain["events_per_s"] >= report.MIN_DRAIN_PER_S
            and drain["received"] >= drain["events"],
        ))  # fmt: skip
    rss_values = [mb for r in bench.runs if r["target"] != "floor" for mb in r["rss_mb"].values()]
    if rss_values:
        out.append((
            "service RSS per process after its runs (max)",
            f"{max(rss_values):.0f} MB",
            f"< {report.MAX_RSS_MB:.0f} MB",
            max(rss_values) < report.MAX_RSS_MB,
        ))  # fmt: skip
    for start, (name, seconds) in enumerate(bench.ready, 1):
        out.append((
            f"service start {start} to ready ({name})",
            f"{seconds:.2f} s",
            f"< {report.MAX_READY_S:.0f} s",
            seconds < report.MAX_READY_S,
        ))  # fmt: skip
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = [e for e in args.endpoints.split(",") if e and e != "floor"]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise SystemExit(f"bench: unknown endpoint(s) {sorted(unknown)}; use {ENDPOINTS}")
    started = datetime.now(UTC)
    tag = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
    wrk = ensure_wrk()
    suffix = corpus.new_run_tag()
    print(f"bench: databases bench_{suffix}_*; logs in {work}", flush=True)
    service_db = uvloop.run(
        database.create_bench_database(args.admin_url, f"bench_{suffix}_service")
    )
    floor_db = uvloop.run(database.create_bench_database(args.admin_url, f"bench_{suffix}_floor"))
    bench = Bench(
        args=args,
        work=work,
        tag=tag,
        wrk=wrk,
        service_db=service_db,
        floor_db=floor_db,
        exchange=f"orders_bench_{suffix}",
        jwt_secret=os.environ.get("JWT_SECRET") or DEFAULT_JWT_SECRET,
    )
    result: dict[str, Any] = {
        "started": started.isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        },
        "settings": {k: v for k, v in vars(args).items() if k != "admin_url"},
    }
    try:
        uvloop.run(events_bench.declare_sink(args.amqp_url, bench.exchange, bench.sink))
        bench.floor = start_floor(bench)
        bench.service = start_service(bench, workers=1)
        result["loadgen"] = loadgen_check(bench)
        throughput_rounds(bench, endpoints)
        if not args.skip_workers and "initials" in endpoints:
            workers_runs(bench)
        if not args.skip_events and relay_available():
            result["lag"] = event_figures(bench)
        if args.profile:
            result["profile_markdown"] = profile(bench, args.profile)
        if relay_available():
            uvloop.run(events_bench.wait_for_drained(service_db, timeout=180))
        procs.stop(bench.service)
        bench.service = None
        if not args.skip_events and relay_available():
            result["drain"] = drain_figures(bench)
        if args.skip_events or not relay_available():
            result["events_note"] = "skipped" if args.skip_events else "no relay (events.relay)"
    finally:
        uvloop.run(events_bench.delete_exchange(args.amqp_url, bench.exchange, bench.sink))
        for managed in (bench.service, bench.floor):
            if managed is not None:
                procs.stop(managed)
        if not args.keep_databases:
            for url in (service_db, floor_db):
                uvloop.run(database.drop_database(args.admin_url, database.name_of(url)))
    result["runs"] = bench.runs
    result["summary"] = summarize(bench)
    result["workers"] = workers_figures(bench)
    result["ready_seconds"] = bench.ready
    result["figures"] = figures(bench, result)
    text = report.markdown(result)
    (RESULTS / f"{tag}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"{tag}.md").write_text(text)
    print(text)
    print(f"bench: wrote {RESULTS / tag}.json and .md; service logs in {work}", flush=True)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help="comma-separated subset of initials,oneclick,me_order (the floor always runs)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per run")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of warm-up before each run"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=1, help="times each endpoint runs (between floor runs)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--ping-seconds", type=float, default=5.0)
    parser.add_argument("--lag-rate", type=float, default=200.0, help="orders/s for the event lag")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--drain-events", type=int, default=10_000)
    parser.add_argument("--skip-events", action="store_true", help="no event lag or drain")
    parser.add_argument("--skip-workers", action="store_true", help="no --workers 2 run")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="initials",
        choices=ENDPOINTS,
        help="py-spy the service during an extra run of this endpoint (default initials)",
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    return parser.parse_args(argv)


def main() -> None:
    run(parse_args())


if __name__ == "__main__":
    main()
