"""fleetlog's one retry delay: grows to its cap, jittered, and starts over after a success."""

from __future__ import annotations

import pytest

from fleetlog.retry import Backoff


def test_backoff_grows_to_its_cap_and_resets() -> None:
    b = Backoff(initial_seconds=1, max_seconds=8)
    delays = [b.next_delay() for _ in range(6)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert all(6.4 <= d <= 9.6 for d in delays[3:])
    b.reset()
    assert b.next_delay() <= 1.2


def test_many_failures_stay_at_the_cap() -> None:
    b = Backoff(initial_seconds=0.5, max_seconds=30, jitter=0)
    assert [b.next_delay() for _ in range(2_000)][-1] == 30


@pytest.mark.parametrize("bad", [{"initial_seconds": 0}, {"initial_seconds": 5, "max_seconds": 1}, {"jitter": 1}])
def test_nonsense_is_refused_with_the_rule(bad: dict) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(**bad)
