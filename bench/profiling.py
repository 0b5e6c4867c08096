"""Sampling the service under load with py-spy, and boiling the samples down to hot spots.

py-spy reads the interpreter's stacks from outside the process (no change to the code, a
few percent of overhead with --nonblocking), and by default samples only while a thread
is on a CPU, so the shares below are shares of the service's CPU time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")
_PACKAGE = re.compile(r"(?:site-packages|lib/python3\.\d+)/(?P<pkg>[A-Za-z0-9_]+)")


def ensure_py_spy() -> str:
    """The py-spy binary, installed from PyPI into this environment when missing."""
    here = Path(sys.executable).with_name("py-spy")
    if here.exists():
        return str(here)
    found = shutil.which("py-spy")
    if found:
        return found
    print("bench: installing py-spy from PyPI", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(here)


def start_recording(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", "200", "--format", "raw", "--nolineno", "--nonblocking",
            "--subprocesses", "--output", str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


OURS = ("service", "events", "schemas")
# Stack roots every sample shares (the command line down to the event loop): never hot.
ROOT_SHARE = 75.0


@dataclass(frozen=True, slots=True)
class HotSpots:
    samples: int
    self_by_package: list[tuple[str, float]]
    in_package: list[tuple[str, float]]
    self_by_function: list[tuple[str, float]]
    ours_inclusive: list[tuple[str, float]]


def _parts(frame: str) -> tuple[str, str] | None:
    match = _FRAME.match(frame)
    return (match.group("func"), match.group("file")) if match else None


def _package(file: str) -> str:
    """`aiohttp/web_protocol.py` -> aiohttp; `inspect.py` (standard library) -> inspect."""
    match = _PACKAGE.search(file)
    if match:
        return match.group("pkg")
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def _name(func: str, file: str) -> str:
    return f"{func} ({file})"


def summarize(raw: Path, top: int = 15) -> HotSpots:
    """Shares of all on-CPU samples: self time per package and function, the share of
    samples with a package anywhere on the stack, and inclusive time of our functions."""
    self_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    in_pkg: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        # The first element is py-spy's "process ..." label, not a frame.
        frames = [p for p in (_parts(f) for f in stack.split(";")[1:]) if p is not None]
        if not frames:
            continue
        count = int(count_text)
        total += count
        func, file = frames[-1]
        self_fn[_name(func, file)] += count
        self_pkg[_package(file)] += count
        for pkg in {_package(f) for _, f in frames}:
            in_pkg[pkg] += count
        for name in {_name(fn, f) for fn, f in frames if _package(f) in OURS}:
            ours[name] += count

    def shares(counter: Counter[str], skip_roots: bool = False) -> list[tuple[str, float]]:
        rows = [(name, round(100 * c / total, 1)) for name, c in counter.most_common()]
        if skip_roots:
            rows = [(name, share) for name, share in rows if share < ROOT_SHARE]
        return rows[:top]

    return HotSpots(
        total,
        shares(self_pkg),
        shares(in_pkg, skip_roots=True),
        shares(self_fn),
        shares(ours, skip_roots=True),
    )


def markdown(spots: HotSpots) -> str:
    lines = [f"{spots.samples} on-CPU samples (py-spy, 200 Hz); shares of all samples.", ""]
    for title, rows in (
        ("self time by package", spots.self_by_package),
        ("package anywhere on the stack", spots.in_package),
        ("self time by function", spots.self_by_function),
        ("our functions, inclusive", spots.ours_inclusive),
    ):
        lines += [f"| {title} | % |", "|---|---:|"]
        lines += [f"| `{name}` | {share} |" for name, share in rows]
        lines.append("")
    return "\n".join(lines)
