"""The load generator: wrk (C, epoll, from Debian's packages) in its own process, fed a
pre-signed corpus by bench/wrk.lua. wrk costs far less CPU per request than any Python
client, which matters on a 2-core machine where the generator shares the cores."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
RESULT_MARK = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    non200: int
    socket_errors: int
    exhausted: int
    corpus: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    first_error: str
    wrk_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def wrk_cpu_per_second(self) -> float:
        """Cores wrk kept busy: how close the generator itself came to its limit."""
        return self.wrk_cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non200 + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "wrk_cores_busy": round(self.wrk_cpu_per_second, 3),
        }


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: installing wrk from Debian's packages", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def run_wrk(
    url: str,
    *,
    corpus_prefix: Path | None,
    seconds: float,
    connections: int,
    threads: int,
    wrk: str = "wrk",
) -> LoadResult:
    """Drives `url` for `seconds` with `connections` keep-alive connections.

    With a corpus, each request of it is sent at most once; without, wrk repeats a GET.
    """
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    if corpus_prefix is not None:
        command += ["--", str(corpus_prefix)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # wrk is the only child reaped in between: the difference is its CPU time.
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line[len(RESULT_MARK) :])
    latency = raw["latency_us"]
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non200=raw["non200"],
        socket_errors=sum(raw["socket_errors"].values()),
        exhausted=raw["exhausted"],
        corpus=raw["corpus"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        max_ms=latency["max"] / 1000,
        first_error=raw["first_error"],
        wrk_cpu_seconds=wrk_cpu,
    )
