"""The directory in which prometheus_client's multiprocess mode keeps the counters of
`serve`'s workers, one set of files per worker process.

The supervisor removes its own directory when it exits; one that is killed (SIGKILL, the
OOM killer) cannot, and each such kill used to leave its files in the temporary directory
for good. So a directory holds a lock (flock) on a file of its own for as long as a
process of its instance lives: the supervisor opens it, and the workers it forks share
the open file, so the lock stays held while a worker outlives a killed supervisor. A
supervisor that starts removes the directories whose lock nobody holds. A directory is
made under a name the sweep does not match and renamed once its lock is held, so a sweep
never takes one between its making and its lock. Directories without the lock file (an
older version's, or not ours) are left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

PREFIX = "order-service-metrics-"
MAKING_PREFIX = f".{PREFIX}making-"
LOCK_FILE = ".instance.lock"


@dataclass(frozen=True)
class MetricsDirectory:
    path: str
    lock_fd: int

    def remove(self) -> None:
        """Removes the directory, then lets its lock go."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self.lock_fd)


def make_metrics_directory(parent: str | None = None) -> MetricsDirectory:
    """A new, locked directory under `parent` (the temporary directory, which honours
    TMPDIR, by default)."""
    making = tempfile.mkdtemp(prefix=MAKING_PREFIX, dir=parent)
    lock_fd = os.open(os.path.join(making, LOCK_FILE), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    head, name = os.path.split(making)
    path = os.path.join(head, PREFIX + name.removeprefix(MAKING_PREFIX))
    os.rename(making, path)
    return MetricsDirectory(path, lock_fd)


def remove_abandoned(parent: str | None = None) -> list[str]:
    """Removes the directories under `parent` whose instance has ended (nobody holds
    their lock); returns their paths."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            lock_fd = os.open(path / LOCK_FILE, os.O_RDWR)
        except OSError:
            continue  # no lock file, or not ours to open: left alone
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live instance's
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
        finally:
            os.close(lock_fd)
    return removed
