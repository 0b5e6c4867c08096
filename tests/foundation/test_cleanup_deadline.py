"""CleanupDeadline: a step takes its own limit, or what the deadline leaves it once the
steps after it have their share, and never less than the shortest wait."""

from __future__ import annotations

from service.cleanup_deadline import SHORTEST_STEP_SECONDS, CleanupDeadline


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_a_deadline_a_step_takes_its_own_limit() -> None:
    assert CleanupDeadline().limit(3.0, leaving=100.0) == 3.0


def test_a_step_takes_what_is_left_once_the_later_steps_have_their_share() -> None:
    clock = Clock()
    deadline = CleanupDeadline(clock)
    deadline.set(4.0)
    assert deadline.limit(3.0) == 3.0
    assert deadline.limit(3.0, leaving=1.5) == 2.5
    clock.now += 3.0
    assert deadline.limit(3.0) == 1.0
    assert deadline.limit(3.0, leaving=0.75) == 0.25


def test_past_the_deadline_a_step_still_gets_the_shortest_wait() -> None:
    clock = Clock()
    deadline = CleanupDeadline(clock)
    deadline.set(1.0)
    clock.now += 5.0
    assert deadline.limit(3.0, leaving=1.0) == SHORTEST_STEP_SECONDS
