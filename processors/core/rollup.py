"""Multi-resolution rollups: step buckets per series, emitted when they close.

For each series and resolution ``r`` a point at step ``s`` falls in bucket
``floor(s / r)``.  The highest bucket seen is open (its *frontier*); a bucket
closes when a later bucket gets a point, or when the run ends, and is emitted
then.  The last ``retained`` closed buckets stay in state, so a late point for
one of them merges and the bucket is emitted again; its ``count`` is the row's
version, which only grows, so the store keeps the fullest row.  Points for
buckets older than that were evicted: they are counted as late, never emitted as
a partial bucket that would hide the complete one.

Coarse resolutions are reduced from the finer ones when they divide evenly, so a
batch of a million points is reduced once and then ten times less each level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fleetlog.processors.core.aggregate import Aggregate, group_starts, reduce

__all__ = ["NONE", "Buckets", "RollupResult", "bucket_points", "update_rollups"]

NONE = np.iinfo(np.int64).min  # frontier/eviction mark of a series that has none yet


@dataclass(frozen=True)
class Buckets:
    """Bucket aggregates: ``series`` (local id), ``res`` (steps per bucket), ``bucket`` index."""

    series: np.ndarray
    res: np.ndarray
    bucket: np.ndarray
    agg: Aggregate

    def __len__(self) -> int:
        return len(self.series)

    @classmethod
    def empty(cls) -> Buckets:
        none = np.empty(0, np.int64)
        return cls(none, none, none, Aggregate.empty())

    def take(self, index: np.ndarray) -> Buckets:
        return Buckets(self.series[index], self.res[index], self.bucket[index], self.agg.take(index))

    @staticmethod
    def concat(parts: Sequence[Buckets]) -> Buckets:
        return Buckets(
            np.concatenate([p.series for p in parts]),
            np.concatenate([p.res for p in parts]),
            np.concatenate([p.bucket for p in parts]),
            Aggregate.concat([p.agg for p in parts]),
        )


@dataclass(frozen=True)
class RollupResult:
    """New state of the series, what to emit, and per series how many points came too late."""

    state: Buckets
    frontier: np.ndarray
    evicted: np.ndarray
    emitted: Buckets
    late: np.ndarray


def bucket_points(
    series: np.ndarray, step: np.ndarray, ts_ms: np.ndarray, value: np.ndarray, resolutions: Sequence[int]
) -> Buckets:
    """Aggregate points sorted by (series, step) into buckets at every resolution."""
    points = Aggregate.of_points(step, ts_ms, value)
    parts = []
    prev_res, prev_keys, prev = 1, (series, step), points
    for res in resolutions:
        if res % prev_res == 0:  # whole finer buckets nest in coarser ones
            keys, agg, _ = reduce((prev_keys[0], prev_keys[1] * prev_res // res), prev, presorted=True)
        else:
            keys, agg, _ = reduce((series, step // res), points, presorted=True)
        parts.append(Buckets(keys[0], np.full(len(agg), res, np.int64), keys[1], agg))
        prev_res, prev_keys, prev = res, keys, agg
    return Buckets.concat(parts) if parts else Buckets.empty()


def update_rollups(
    state: Buckets,
    frontier: np.ndarray,
    evicted: np.ndarray,
    new: Buckets,
    *,
    resolutions: Sequence[int],
    retained: int,
    ended: bool,
    flush: np.ndarray,
) -> RollupResult:
    """Merge a batch's buckets into the state of its series.

    ``frontier`` and ``evicted`` are (series, resolution) arrays of bucket indices
    (``NONE`` if none).  ``ended`` means the run is over, so every touched bucket
    is final; ``flush`` marks series whose open bucket must be emitted now
    because the run just ended.
    """
    res_arr = np.asarray(resolutions, np.int64)
    n_series = len(frontier)
    ri_new = np.searchsorted(res_arr, new.res)
    late_mask = new.bucket <= evicted[new.series, ri_new]
    finest = late_mask & (ri_new == 0)
    late = np.bincount(new.series[finest], weights=new.agg.count[finest], minlength=n_series).astype(np.int64)
    new = new.take(~late_mask)
    ri_new = ri_new[~late_mask]

    front = frontier.copy()
    np.maximum.at(front, (new.series, ri_new), new.bucket)

    merged = Buckets.concat([state, new])
    keys, agg, group = reduce((merged.series, merged.res, merged.bucket), merged.agg)
    series, res, bucket = keys
    ri = np.searchsorted(res_arr, res)
    touched = np.zeros(len(series), bool)
    touched[group[len(state) :]] = True

    closed = bucket < front[series, ri]
    just_closed = closed & (bucket == frontier[series, ri])
    emit = (touched & (closed | ended)) | just_closed | (flush[series] & (bucket == front[series, ri]))

    # Keep the open bucket and the last `retained` closed ones of every (series, resolution).
    g = series * len(res_arr) + ri
    starts = group_starts((g,))
    ends = np.repeat(np.append(starts[1:], len(g)), np.diff(np.append(starts, len(g))))
    keep = ends - 1 - np.arange(len(g)) <= retained
    gone = ~keep
    marks = evicted.copy()
    np.maximum.at(marks, (series[gone], ri[gone]), bucket[gone])

    rows = Buckets(series, res, bucket, agg)
    return RollupResult(state=rows.take(keep), frontier=front, evicted=marks, emitted=rows.take(emit), late=late)
