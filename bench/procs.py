"""The processes under test: started with their output to files, probed until ready,
measured from /proc (CPU seconds of the whole process tree, resident memory per process),
and stopped by their own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Managed:
    """A process started by the benchmark, with the seconds it took to become ready."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready_seconds: float = float("nan")

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    ready_path: str,
    timeout: float = 30.0,
) -> Managed:
    """Starts `command` and waits until GET `ready_path` answers 200; times that."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, env=dict(env)
        )
    managed = Managed(name, process, port, log_path)
    deadline = started + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log_path}")
        if _answers_200(managed.url(ready_path)):
            managed.ready_seconds = time.perf_counter() - started
            return managed
        if time.perf_counter() > deadline:
            stop(managed)
            raise RuntimeError(f"{name} not ready after {timeout:.0f} s; see {log_path}")
        time.sleep(0.01)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(managed: Managed, timeout: float = 15.0) -> int | None:
    """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
    process = managed.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    ppid: int
    command: str
    cpu_seconds: float  # user + system so far, its own and its exited children's


def process_stats() -> list[ProcStat]:
    """Every live process, from /proc/<pid>/stat (one that exits meanwhile is left out)."""
    stats = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        fields = rest.split()  # fields[0] is field 3 of proc(5): state, ppid, ...
        # utime, stime, cutime, cstime (fields 14 to 17). The children's times keep the CPU
        # of a process that exited mid-run (a PostgreSQL backend whose connection closed)
        # in its parent's figure, instead of taking it out of the group's total.
        cpu = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
        stats.append(ProcStat(int(entry), int(fields[1]), head[head.index("(") + 1 :], cpu))
    return stats


def _descendants(pid: int, stats: list[ProcStat]) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (worker processes of the service)."""
    return _descendants(pid, process_stats())


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants, live and exited."""
    stats = process_stats()
    members = set(_descendants(pid, stats))
    return sum(stat.cpu_seconds for stat in stats if stat.pid in members)


def run_queue_seconds(pid: int) -> float:
    """Seconds the threads of `pid` and its live descendants have spent ready to run but
    waiting for a core (/proc/<pid>/task/<tid>/schedstat, second field; needs a kernel
    with scheduler statistics, else 0): the time a process lost to the others on the
    machine, which its CPU seconds do not show."""
    waited = 0
    for member in tree(pid):
        try:
            tasks = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                waited += int(Path(f"/proc/{member}/task/{task}/schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return waited / 1e9


def rss_mb(pid: int) -> dict[int, float]:
    """Resident set size in MB of `pid` and each live descendant."""
    sizes: dict[int, float] = {}
    for member in tree(pid):
        try:
            resident = int(Path(f"/proc/{member}/statm").read_text().split()[1])
        except OSError:
            continue
        sizes[member] = resident * PAGE_KB / 1024
    return sizes


# What the machine runs besides the process under test, by the command name in
# /proc/<pid>/stat: every PostgreSQL backend, and RabbitMQ's Erlang VM with its helpers.
GROUPS = {
    "postgres": ("postgres",),
    "rabbitmq": ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"),
}


def cpu_by_group() -> dict[str, float]:
    """CPU seconds used so far by the processes of each group in GROUPS (live ones, and
    exited ones their parent has reaped)."""
    totals = dict.fromkeys(GROUPS, 0.0)
    owner = {name: group for group, names in GROUPS.items() for name in names}
    for stat in process_stats():
        group = owner.get(stat.command)
        if group is not None:
            totals[group] += stat.cpu_seconds
    return totals


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS
