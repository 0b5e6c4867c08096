"""The benchmark's report: a markdown table of each endpoint against the floor, the other
figures against their targets, and the whole result as JSON."""

from __future__ import annotations

import math
from typing import Any

# The targets of issue 8 (single worker unless said).
MIN_RPS_RATIO = 0.8
MAX_P99_RATIO = 2.0
MAX_LAG_P99_MS = 50.0
MIN_DRAIN_PER_S = 3000.0
MAX_RSS_MB = 150.0
MAX_READY_S = 2.0
MIN_LOADGEN_RATIO = 10.0


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def endpoint_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| endpoint | req/s | p50 ms | p99 ms | p99.9 ms | errors | req/s vs floor "
        "| p99 vs floor | CPU ms/req | RSS MB | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in summary.items():
        ok = row.get("meets_target")
        lines.append(
            f"| {name} | {_num(row['rps'], 0)} | {_num(row['p50_ms'], 2)} "
            f"| {_num(row['p99_ms'], 2)} | {_num(row['p999_ms'], 2)} | {row['errors']} "
            f"| {_num(row.get('rps_vs_floor'), 2)}x | {_num(row.get('p99_vs_floor'), 2)}x "
            f"| {_num(row.get('cpu_ms_per_request'), 3)} | {_num(row.get('rss_mb'), 0)} "
            f"| {'floor' if name == 'floor' else _verdict(ok)} |"
        )
    return lines


def cpu_table(summary: dict[str, Any], cpus: int) -> list[str]:
    """CPU milliseconds per request of each part of the machine, per endpoint: what a
    request costs in all, and whether the run was bound by the machine's cores."""
    parts = list(next(iter(summary.values()))["machine_cpu_ms_per_request"])
    lines = [
        "| endpoint | " + " | ".join(f"{part} ms/req" for part in parts)
        + f" | machine busy (of {cpus} cores) |",
        "|---|" + "---:|" * (len(parts) + 1),
    ]  # fmt: skip
    for name, row in summary.items():
        shares = row["machine_cpu_ms_per_request"]
        cells = " | ".join(_num(shares[part], 3) for part in parts)
        lines.append(f"| {name} | {cells} | {_num(row['machine_busy_cores'], 2)} |")
    return lines


def server_time_table(summary: dict[str, Any]) -> list[str]:
    """How the server spent the wall time of its runs: on a core, or ready to run and
    waiting for one while other processes held both; and the order writer's mean batch."""
    lines = [
        "| endpoint | server on a core | server waiting for a core | mean order-write batch |",
        "|---|---:|---:|---:|",
    ]
    for name, row in summary.items():
        batch = row.get("mean_write_batch")
        lines.append(
            f"| {name} | {_num(row.get('server_cpu_cores'), 2)} "
            f"| {_num(row.get('server_run_queue_cores'), 2)} "
            f"| {'-' if name == 'floor' else _num(batch, 1)} |"
        )
    return lines


def figures_table(figures: list[tuple[str, str, str, bool | None]]) -> list[str]:
    lines = ["| figure | value | target | verdict |", "|---|---:|---|---|"]
    lines += [
        f"| {name} | {value} | {target} | {_verdict(ok)} |" for name, value, target, ok in figures
    ]
    return lines


def markdown(result: dict[str, Any]) -> str:
    head = [
        f"# Benchmark {result['started']}",
        "",
        f"{result['machine']['cpus']} CPUs, load average before: {result['machine']['loadavg']}; "
        f"{result['settings']['connections']} connections, {result['settings']['duration']} s "
        f"per run after {result['settings']['warmup']} s warm-up, "
        f"{result['settings']['rounds']} round(s); runs alternate with the floor and each "
        "endpoint run is compared with the mean of the floor runs right before and after it.",
        "",
    ]
    body = [
        *endpoint_table(result["summary"]),
        "",
        "Where the CPU goes, in ms per request (the floor does no validation, logging or "
        "event publishing, so RabbitMQ and the relay cost it nothing):",
        "",
        *cpu_table(result["summary"], result["machine"]["cpus"]),
        "",
        "The server's processes over the wall time of the runs, in cores (ready to run but "
        "waiting is time lost to PostgreSQL, RabbitMQ and wrk on the same cores):",
        "",
        *server_time_table(result["summary"]),
        "",
        *figures_table(result["figures"]),
    ]
    runs = ["", "Runs in order:", ""]
    for r in result["runs"]:
        line = f"- {r['target']}: {_num(r['rps'], 0)} req/s, p99 {_num(r['p99_ms'], 2)} ms"
        if "rps_vs_floor" in r:
            line += f" ({_num(r['rps_vs_floor'], 2)}x / {_num(r['p99_vs_floor'], 2)}x floor)"
        line += f", {r['errors']} errors"
        if r["errors"]:
            line += f" (first: {r['first_error'][:120]})"
        runs.append(line)
    tail = ["", result["profile_markdown"]] if result.get("profile_markdown") else []
    return "\n".join(head + body + runs + tail) + "\n"
