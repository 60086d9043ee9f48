"""Cross-rank aggregation for distributed runs, and the straggler signal.

Every rank of a run logs the same metric at the same step; this module waits
until all ``world_size`` ranks reported a step, then emits mean, min, max and
(population) std across ranks and the slowest rank (the one whose point came
last).  A step that some rank never reports is emitted anyway, marked
incomplete, once the run's newest point is ``timeout`` later than the step's
first point, or when the run ends.  Metrics only one rank ever logged are not
aggregated (there is nothing to compare).  A rank's repeated value for a step
replaces its earlier one; a value for a step already emitted is late and counted.

Stragglers: per batch, each rank that advanced gets a step time (time between
its newest steps, per step); a rank whose step time stays above ``factor`` times
the median for ``patience`` batches in a row fires one alert, re-armed once it
catches up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fleetlog.processors.core.aggregate import group_starts

__all__ = ["CrossResult", "Straggler", "aggregate_ranks", "check_stragglers"]


@dataclass(frozen=True)
class CrossResult:
    rows: dict[str, np.ndarray]
    pending: dict[str, np.ndarray]
    done_through: np.ndarray
    late: np.ndarray


def _last_per_group(keys: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """Indices (into sorted order) of each group's last element."""
    starts = group_starts(keys)
    return np.append(starts[1:], n) - 1


def aggregate_ranks(
    points: dict[str, np.ndarray],
    pending: dict[str, np.ndarray],
    *,
    done_through: np.ndarray,
    multi_rank: np.ndarray,
    world_size: int,
    watermark_ms: int,
    timeout_ms: int,
    flush: bool,
) -> CrossResult:
    """Merge new points (``metric, step, rank, value, ts``) with pending ones; emit finished steps.

    ``metric`` is a local id indexing ``done_through`` and ``multi_rank``; pending
    points come first in arrival order.
    """
    n_old = len(pending["step"])
    cols = {k: np.concatenate([pending[k], points[k]]) for k in ("metric", "step", "rank", "value", "ts")}
    was_pending = np.arange(len(cols["step"])) < n_old
    order = np.lexsort((np.arange(len(cols["step"])), cols["rank"], cols["step"], cols["metric"]))
    cols = {k: v[order] for k, v in cols.items()}
    was_pending = was_pending[order]

    # A (metric, step) group with nothing pending and a step already emitted is late.
    step_starts = group_starts((cols["metric"], cols["step"]))
    step_len = np.diff(np.append(step_starts, len(order)))
    had_pending = np.repeat(np.maximum.reduceat(was_pending, step_starts) if len(order) else was_pending, step_len)
    late_mask = ~had_pending & (cols["step"] <= done_through[cols["metric"]])
    late = np.bincount(cols["metric"][late_mask], minlength=len(done_through)).astype(np.int64)
    cols = {k: v[~late_mask] for k, v in cols.items()}

    # One value per rank and step: the last one that arrived.
    n = len(cols["step"])
    last = _last_per_group((cols["metric"], cols["step"], cols["rank"]), n) if n else np.empty(0, np.int64)
    cols = {k: v[last] for k, v in cols.items()}
    n = len(cols["step"])
    if n == 0:
        empty = {k: v[:0] for k, v in cols.items()}
        rows = _rows(empty, np.empty(0, np.int64), world_size)
        return CrossResult(rows=rows, pending=empty, done_through=done_through, late=late)

    starts = group_starts((cols["metric"], cols["step"]))
    sizes = np.diff(np.append(starts, n))
    first_ts = np.minimum.reduceat(cols["ts"], starts)
    metric = cols["metric"][starts]
    complete = sizes >= world_size
    expired = flush | (watermark_ms - first_ts > timeout_ms)
    emit = complete | (expired & multi_rank[metric])
    keep = ~emit & ~expired
    member = np.repeat(np.arange(len(starts)), sizes)
    done = done_through.copy()
    np.maximum.at(done, metric[emit], cols["step"][starts][emit])
    rows = _rows(cols, starts, world_size)
    return CrossResult(
        rows={k: v[emit] for k, v in rows.items()},
        pending={k: v[keep[member]] for k, v in cols.items()},
        done_through=done,
        late=late,
    )


_ROW_FIELDS = ("metric", "step", "ranks", "mean", "min", "max", "std", "slowest_rank", "spread_ms", "ts", "complete")


def _rows(cols: dict[str, np.ndarray], starts: np.ndarray, world_size: int) -> dict[str, np.ndarray]:
    n = len(cols["step"])
    if not len(starts):
        return {k: np.empty(0) for k in _ROW_FIELDS}
    sizes = np.diff(np.append(starts, n))
    v = cols["value"]
    total = np.add.reduceat(v, starts)
    mean = total / sizes
    var = np.add.reduceat((v - np.repeat(mean, sizes)) ** 2, starts) / sizes
    ts_max = np.maximum.reduceat(cols["ts"], starts)
    slowest_at = np.maximum.reduceat(np.where(cols["ts"] == np.repeat(ts_max, sizes), np.arange(n), -1), starts)
    return {
        "metric": cols["metric"][starts],
        "step": cols["step"][starts],
        "ranks": sizes,
        "mean": mean,
        "min": np.minimum.reduceat(v, starts),
        "max": np.maximum.reduceat(v, starts),
        "std": np.sqrt(var),
        "slowest_rank": cols["rank"][slowest_at],
        "spread_ms": ts_max - np.minimum.reduceat(cols["ts"], starts),
        "ts": ts_max,
        "complete": (sizes >= world_size).astype(np.uint8),
    }


@dataclass(frozen=True)
class Straggler:
    rank: int
    step: int
    ts_ms: int
    ratio: float


def check_stragglers(
    progress: dict[int, tuple[int, int]],
    memory: dict[str, list[float]],
    *,
    factor: float,
    patience: int,
) -> list[Straggler]:
    """Update ``memory`` (rank -> [step, ts, streak, alerted]) with each rank's newest (step, ts_ms)."""
    times: dict[int, float] = {}
    for rank, (step, ts) in progress.items():
        seen = memory.get(str(rank))
        if seen is not None and step > seen[0]:
            times[rank] = max(ts - seen[1], 0) / (step - seen[0])
        if seen is None or step > seen[0]:
            memory[str(rank)] = [step, ts, seen[2] if seen else 0, seen[3] if seen else 0]
    if len(times) < 2:
        return []
    median = float(np.median(list(times.values())))
    found = []
    for rank, t in times.items():
        entry = memory[str(rank)]
        slow = median > 0 and t > factor * median
        entry[2] = entry[2] + 1 if slow else 0
        if not slow:
            entry[3] = 0
        elif entry[2] >= patience and not entry[3]:
            entry[3] = 1
            found.append(Straggler(rank, int(entry[0]), int(entry[1]), t / median))
    return found
