"""The end of a worker's clean-up, shared by its steps.

Each step of the clean-up (the relay's stop, the broker's close, the order writers' last
batches, the pool's close) has a limit of its own. Added up they exceed the few seconds a
worker has after its requests, so when the requests took the whole SHUTDOWN_TIMEOUT and
something stops answering, the hard stop used to end the worker in the middle of a step,
with no word of what was left. With the deadline each step takes its own limit, or less:
what is left before the deadline once the steps after it have their share. The worker
then ends its clean-up itself and names what it gave up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The least a step is given, past the deadline too: a task just cancelled needs a turn of
# the event loop to end, and a wait of 0 would give up on one that was about to.
SHORTEST_STEP_SECONDS = 0.05


class CleanupDeadline:
    """No deadline until set(): a step then takes its own limit (an app stopped by a test,
    or by a command, has no hard stop to keep clear of)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at: float | None = None

    def set(self, seconds: float) -> None:
        self._at = self._clock() + seconds

    def limit(self, own: float, *, leaving: float = 0.0) -> float:
        """`own`, or what is left before the deadline once `leaving` seconds are kept for
        the steps after this one; never below SHORTEST_STEP_SECONDS."""
        if self._at is None:
            return own
        left = self._at - self._clock() - leaving
        return max(SHORTEST_STEP_SECONDS, min(own, left))
