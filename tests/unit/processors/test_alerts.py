"""Point alerts: one per episode, across batch boundaries; spikes need history and a positive median."""

from __future__ import annotations

import numpy as np
from fleetlog.processors.core.alerts import ABOVE, BELOW, NONFINITE, SPIKE, detect


class Detector:
    def __init__(self, n_series=1, *, above=np.nan, below=np.nan, spike=True, window=5):
        self.flags = np.zeros(n_series, np.int64)
        self.history = [np.empty(0) for _ in range(n_series)]
        self.above = np.full(n_series, above)
        self.below = np.full(n_series, below)
        self.spike = np.full(n_series, spike)
        self.window = window

    def feed(self, values, series=None):
        values = np.asarray(values, float)
        series = np.zeros(len(values), np.int64) if series is None else np.asarray(series, np.int64)
        out = detect(
            series,
            values,
            flags=self.flags,
            above=self.above,
            below=self.below,
            spike_enabled=self.spike,
            history=self.history,
            spike_window=self.window,
            spike_factor=3.0,
        )
        self.flags, self.history = out.flags, out.history
        return sorted(zip(out.rule.tolist(), out.index.tolist(), strict=False))


def test_a_nan_streak_split_over_batches_is_one_alert_and_recovery_rearms():
    d = Detector(spike=False)
    assert d.feed([1.0, np.nan, np.nan]) == [(NONFINITE, 1)]
    assert d.feed([np.nan, np.inf]) == []  # same episode
    assert d.feed([1.0, -np.inf]) == [(NONFINITE, 1)]  # recovered, then a new one


def test_thresholds_fire_on_crossing_out_of_range():
    d = Detector(above=5.0, below=0.0, spike=False)
    assert d.feed([1.0, 6.0, 7.0, 1.0, -1.0, 6.0]) == [(ABOVE, 1), (ABOVE, 5), (BELOW, 4)]


def test_spikes_fire_on_planted_values_and_not_on_noise():
    rng = np.random.default_rng(0)
    clean = 1.0 + 0.05 * rng.standard_normal(500)
    assert Detector(window=20).feed(clean) == []
    planted = clean.copy()
    planted[300] = 10.0
    planted[301:305] = 9.0  # the same episode
    assert Detector(window=20).feed(planted) == [(SPIKE, 300)]


def test_spike_history_carries_over_batches_and_needs_a_full_window():
    d = Detector(window=5)
    assert d.feed([1.0, 1.0, 1.0, 1.0, 50.0]) == []  # only four values before it: no verdict
    assert d.feed([1.0]) == []
    assert d.feed([1.0, 1.0, 1.0, 9.0]) == [(SPIKE, 3)]


def test_spikes_only_where_the_rolling_median_is_positive_and_only_for_enabled_series():
    assert Detector(window=3).feed([-1.0, -1.0, -1.0, 5.0]) == []
    d = Detector(n_series=2, window=3)
    d.spike[1] = False
    assert d.feed([1, 1, 1, 9, 1, 1, 1, 9], series=[0, 0, 0, 0, 1, 1, 1, 1]) == [(SPIKE, 3)]
