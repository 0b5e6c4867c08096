"""The relay's stop (OutboxRelay.running): its wait before the first cancel and after each
of the two, by themselves and within what a worker's clean-up deadline leaves it."""

from __future__ import annotations

import pytest

from events.relay import ABANDON_BATCH_AFTER, _stop_waits
from service.cleanup_deadline import SHORTEST_STEP_SECONDS


@pytest.mark.parametrize("shutdown_timeout", [0.0, 0.5, 3.0])
def test_with_time_enough_the_waits_are_the_relays_own(shutdown_timeout: float) -> None:
    own = (shutdown_timeout, ABANDON_BATCH_AFTER)
    assert _stop_waits(shutdown_timeout, None) == own
    # A cap that is the relay's own limit changes nothing: SHUTDOWN_TIMEOUT=0 used to get
    # a third of 2 s after each cancel, and gave up on a batch that needed 0.8 s.
    assert _stop_waits(shutdown_timeout, shutdown_timeout + 2 * ABANDON_BATCH_AFTER) == own
    assert _stop_waits(shutdown_timeout, 100.0) == own


def test_a_shorter_cap_takes_from_the_first_wait_before_the_others() -> None:
    first, after_cancel = _stop_waits(3.0, 3.25)
    assert (first, after_cancel) == (1.25, ABANDON_BATCH_AFTER)
    assert first + 2 * after_cancel == 3.25


def test_a_cap_below_two_abandon_waits_splits_it_between_them() -> None:
    assert _stop_waits(3.0, 1.5) == (0.0, 0.75)


def test_past_the_deadline_the_waits_after_a_cancel_keep_the_shortest_step() -> None:
    assert _stop_waits(3.0, SHORTEST_STEP_SECONDS) == (0.0, SHORTEST_STEP_SECONDS)
