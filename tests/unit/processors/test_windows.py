"""Fleet windows: per-run contributions per host and experiment, heartbeats count as activity."""

from __future__ import annotations

import numpy as np
from fleetlog.processors.core.windows import add_heartbeat, add_points, window_rows


def test_points_and_gpu_use_land_in_tumbling_windows_per_host_and_experiment():
    windows, marks = {}, {}
    ts = np.array([0, 5_000, 9_999, 10_000, 12_000])
    touched, late = add_points(
        windows,
        marks,
        sizes=[10],
        ts_ms=ts,
        host=np.array([0, 0, 1, 0, 0]),
        hosts=["a", "b"],
        gpu=np.array([True, False, True, True, False]),
        value=np.array([50.0, 1.0, 70.0, 90.0, 2.0]),
    )
    rows = window_rows(windows, touched, experiment="exp")
    got = {
        (s, k, w): (p, g, n)
        for s, k, w, p, g, n in zip(
            rows["scope"],
            rows["key"],
            rows["window_start"],
            rows["points"],
            rows["gpu_util_sum"],
            rows["gpu_util_count"],
            strict=True,
        )
    }
    assert got == {
        ("host", "a", 0.0): (2, 50.0, 1),
        ("host", "b", 0.0): (1, 70.0, 1),
        ("host", "a", 10.0): (2, 90.0, 1),
        ("experiment", "exp", 0.0): (3, 120.0, 2),
        ("experiment", "exp", 10.0): (2, 90.0, 1),
    }
    assert late == 0


def test_heartbeats_make_a_run_active_without_points_and_old_windows_are_dropped():
    windows, marks = {}, {}
    touched = add_heartbeat(windows, marks, sizes=[10], time_s=25.0, host="a")
    assert window_rows(windows, touched, experiment="e")["heartbeats"] == [1, 1]
    add_points(
        windows,
        marks,
        sizes=[10],
        ts_ms=np.array([100_000]),
        host=np.array([0]),
        hosts=["a"],
        gpu=np.array([False]),
        value=np.array([1.0]),
    )
    assert "10|20000|a" not in windows
    _, late = add_points(
        windows,
        marks,
        sizes=[10],
        ts_ms=np.array([21_000]),
        host=np.array([0]),
        hosts=["a"],
        gpu=np.array([False]),
        value=np.array([1.0]),
    )
    assert late == 1
