"""WORKERS=0: one worker per CPU the process may use, not per CPU of the host."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from service.config import MAX_WORKERS, Config
from service.server import resolve_workers, usable_cpus

# What usable_cpus counts without a quota (the host's CPUs where there is no affinity).
AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_max(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


def test_without_a_quota_every_cpu_of_the_affinity(tmp_path: Path) -> None:
    assert usable_cpus(cpu_max(tmp_path, "max 100000\n")) == AFFINITY
    assert usable_cpus(tmp_path / "absent") == AFFINITY


def test_a_cgroup_quota_of_one_and_a_half_cpus_is_two_workers_at_most(tmp_path: Path) -> None:
    assert usable_cpus(cpu_max(tmp_path, "150000 100000\n")) == min(2, AFFINITY)
    assert usable_cpus(cpu_max(tmp_path, "50000 100000\n")) == 1


def test_an_unreadable_quota_is_no_quota(tmp_path: Path) -> None:
    assert usable_cpus(cpu_max(tmp_path, "garbage\n")) == AFFINITY
    assert usable_cpus(cpu_max(tmp_path, "100 0\n")) == AFFINITY


def test_zero_workers_follow_the_usable_cpus_up_to_the_most(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process pinned to one CPU of a bigger host (taskset, a cpuset): one worker.
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert resolve_workers(0, replace(config, workers=0)) == 1
    many = set(range(MAX_WORKERS * 2))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: many, raising=False)
    monkeypatch.setattr("service.server.CGROUP_CPU_MAX", Path("/nonexistent/cpu.max"))
    assert resolve_workers(None, replace(config, workers=0)) == MAX_WORKERS
    assert resolve_workers(3, config) == 3
