"""Fleet windows: tumbling wall-clock windows of each run's activity, per host and per experiment.

A run is processed by one worker, but an experiment's runs are spread over all
of them, so each run contributes its own row per window (points, GPU
utilisation sum and count, heartbeats) and the store sums rows across runs:
``fleet_window_totals`` gives points, active runs (rows) and mean GPU use.
Windows follow the points' own timestamps, so a replay lands in the same windows.
Open windows are re-emitted with every batch that touches them (the row's
version only grows); a window more than two lengths behind the run's newest
window is dropped from state, and points for it count as late.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["add_heartbeat", "add_points", "window_rows"]

# state value: [points, gpu_sum, gpu_count, heartbeats]
Windows = dict[str, list[float]]
COLUMNS = ("window_seconds", "window_start", "scope", "key", "points", "gpu_util_sum", "gpu_util_count", "heartbeats")


def _key(size: int, start_ms: int, host: str) -> str:
    return f"{size}|{start_ms}|{host}"


def _accept(windows: Windows, marks: dict[str, int], size: int, start_ms: int) -> bool:
    """Advance the size's eviction mark; False if ``start_ms`` is already behind it."""
    mark = marks.get(str(size))
    if mark is not None and start_ms < mark:
        return False
    newest = start_ms - 2 * size * 1000
    if mark is None or newest > mark:
        marks[str(size)] = newest
        for k in [k for k in windows if k.startswith(f"{size}|") and int(k.split("|", 2)[1]) < newest]:
            del windows[k]
    return True


def add_points(
    windows: Windows,
    marks: dict[str, int],
    *,
    sizes: Sequence[int],
    ts_ms: np.ndarray,
    host: np.ndarray,
    hosts: Sequence[str],
    gpu: np.ndarray,
    value: np.ndarray,
) -> tuple[set[str], int]:
    """Add points (``gpu`` marks GPU-utilisation points); return touched window keys and late points."""
    touched: set[str] = set()
    late = 0
    if not len(ts_ms):
        return touched, late
    use = gpu & np.isfinite(value)
    gpu_value = np.where(use, value, 0.0)
    for size in sizes:
        width = size * 1000
        windows_seen, slot = _slots(ts_ms // width, host, len(hosts))
        points = np.bincount(slot, minlength=len(windows_seen))
        gpu_sum = np.bincount(slot, weights=gpu_value, minlength=len(windows_seen))
        gpu_n = np.bincount(slot, weights=use, minlength=len(windows_seen))
        for j in np.flatnonzero(points):  # slots are ordered oldest first, so marks advance in order
            s, h = int(windows_seen[j][0]) * width, int(windows_seen[j][1])
            if not _accept(windows, marks, size, s):
                late += int(points[j])
                continue
            k = _key(size, s, hosts[h])
            w = windows.setdefault(k, [0, 0.0, 0, 0])
            w[0] += int(points[j])
            w[1] += float(gpu_sum[j])
            w[2] += int(gpu_n[j])
            touched.add(k)
    return touched, late


def _slots(window: np.ndarray, host: np.ndarray, n_hosts: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Number each (window, host) pair, oldest window first, without sorting a batch's worth of points.

    A batch spans a few windows, so the pairs are counted in a dense table; only
    absurdly spread timestamps fall back to ``np.unique``.
    """
    lo = int(window.min())
    span = int(window.max()) - lo + 1
    if span * n_hosts <= 1 << 20:
        dense = (window - lo) * n_hosts + host
        used = np.flatnonzero(np.bincount(dense, minlength=span * n_hosts))
        lookup = np.zeros(span * n_hosts, np.int64)
        lookup[used] = np.arange(len(used))
        return [(lo + int(u) // n_hosts, int(u) % n_hosts) for u in used], lookup[dense]
    pairs, slot = np.unique(np.stack([window, host]), axis=1, return_inverse=True)
    return [(int(w), int(h)) for w, h in pairs.T], slot.ravel()


def add_heartbeat(
    windows: Windows, marks: dict[str, int], *, sizes: Sequence[int], time_s: float, host: str
) -> set[str]:
    """A heartbeat makes the run count as active in its windows even without points."""
    touched = set()
    for size in sizes:
        start = int(time_s * 1000) // (size * 1000) * (size * 1000)
        if _accept(windows, marks, size, start):
            k = _key(size, start, host)
            windows.setdefault(k, [0, 0.0, 0, 0])[3] += 1
            touched.add(k)
    return touched


def window_rows(windows: Windows, touched: set[str], *, experiment: str) -> dict[str, list]:
    """Rows for the touched windows: one per host, plus one per experiment summing the run's hosts."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    starts: set[tuple[int, int]] = set()
    for k in sorted(touched & windows.keys()):
        size, start, host = k.split("|", 2)
        _append(rows, int(size), int(start), "host", host, windows[k])
        starts.add((int(size), int(start)))
    for size, start in sorted(starts):
        prefix = f"{size}|{start}|"
        parts = [w for k, w in windows.items() if k.startswith(prefix)]
        _append(rows, size, start, "experiment", experiment, [sum(w[i] for w in parts) for i in range(4)])
    return rows


def _append(rows: dict[str, list], size: int, start_ms: int, scope: str, key: str, w: list[float]) -> None:
    rows["window_seconds"].append(size)
    rows["window_start"].append(start_ms / 1000.0)
    rows["scope"].append(scope)
    rows["key"].append(key)
    rows["points"].append(int(w[0]))
    rows["gpu_util_sum"].append(float(w[1]))
    rows["gpu_util_count"].append(int(w[2]))
    rows["heartbeats"].append(int(w[3]))
