"""The multiprocess metrics directories: one whose instance ended without removing it is
removed by the next start; a live instance's, or one without the lock file, is not."""

from __future__ import annotations

import os
from pathlib import Path

from service.metrics_dir import LOCK_FILE, PREFIX, make_metrics_directory, remove_abandoned


def test_a_live_directory_stays_and_an_abandoned_one_goes(tmp_path: Path) -> None:
    live = make_metrics_directory(str(tmp_path))
    abandoned = make_metrics_directory(str(tmp_path))
    assert Path(live.path).name.startswith(PREFIX)
    assert (Path(live.path) / LOCK_FILE).is_file()
    (Path(abandoned.path) / "counter_123.db").write_bytes(b"\0" * 16)
    os.close(abandoned.lock_fd)  # its processes ended without removing it (SIGKILL)

    assert remove_abandoned(str(tmp_path)) == [abandoned.path]
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(live.path).name]
    live.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_directory_without_the_lock_file_is_left_alone(tmp_path: Path) -> None:
    older = tmp_path / f"{PREFIX}abc123"  # an older version's, or another user's
    older.mkdir()
    assert remove_abandoned(str(tmp_path)) == []
    assert older.is_dir()
