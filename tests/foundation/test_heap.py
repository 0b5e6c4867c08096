"""The server process's garbage-collector settings (in a process of its own: they are
process-wide)."""

from __future__ import annotations

import subprocess
import sys

from service.heap import YOUNG_GENERATION_THRESHOLD

PROBE = """
import gc
from service.heap import freeze_startup_heap
defaults = gc.get_threshold()
freeze_startup_heap()
print(defaults[1:] == gc.get_threshold()[1:], gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def test_the_start_up_heap_is_frozen_and_young_objects_collected_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", str(YOUNG_GENERATION_THRESHOLD), "True"]
