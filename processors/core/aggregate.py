"""The envelope aggregate that every rollup bucket and metric summary is made of.

It holds count, NaN/Inf count, sum of finite values, min and max with their
steps, first and last value by step, and the time span.  Aggregates merge: the
aggregate of a union is the reduction of the parts' aggregates.  So a raw point
is a one-point aggregate, a bucket is a reduction of points, a late point merges
into the bucket it belongs to, and a coarse resolution is a reduction of a finer
one -- one function, ``reduce``, does all of it over whole arrays.

Ties are broken so that the result does not depend on how a stream was cut into
batches: ``first`` is the earliest-arriving value at the smallest step, ``last``
the latest-arriving value at the largest step, and min/max report the smallest
step holding the extreme.  Non-finite values never enter min, max or sum (they
are counted in ``nonfinite``), so one NaN cannot blank a chart's envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["FIELDS", "Aggregate", "group_starts", "reduce"]

_BIG = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Parallel arrays, one aggregate per index.  ``min`` is +inf (``max`` -inf) when no value was finite."""

    count: np.ndarray
    nonfinite: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    min_step: np.ndarray
    max: np.ndarray
    max_step: np.ndarray
    first: np.ndarray
    first_step: np.ndarray
    last: np.ndarray
    last_step: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    @classmethod
    def of_points(cls, step: np.ndarray, ts_ms: np.ndarray, value: np.ndarray) -> Aggregate:
        """One aggregate per point."""
        finite = np.isfinite(value)
        return cls(
            count=np.ones(len(value), np.int64),
            nonfinite=(~finite).astype(np.int64),
            sum=np.where(finite, value, 0.0),
            min=np.where(finite, value, np.inf),
            min_step=step,
            max=np.where(finite, value, -np.inf),
            max_step=step,
            first=value,
            first_step=step,
            last=value,
            last_step=step,
            first_ts=ts_ms,
            last_ts=ts_ms,
        )

    @classmethod
    def empty(cls) -> Aggregate:
        return cls.from_arrays({})

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Aggregate:
        """Rebuild from ``to_arrays`` output; missing fields mean zero aggregates."""
        return cls(**{name: np.asarray(arrays.get(name, np.empty(0, dtype)), dtype) for name, dtype in FIELDS.items()})

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def take(self, index: np.ndarray) -> Aggregate:
        return Aggregate(**{name: arr[index] for name, arr in self.to_arrays().items()})

    @staticmethod
    def concat(parts: Sequence[Aggregate]) -> Aggregate:
        return Aggregate(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS})

    def columns(self) -> dict[str, np.ndarray]:
        """Output columns: NaN for min/max of all-non-finite aggregates, times in unix seconds."""
        empty = self.count == self.nonfinite
        return {
            "count": self.count,
            "nonfinite": self.nonfinite,
            "sum": self.sum,
            "min": np.where(empty, np.nan, self.min),
            "min_step": np.where(empty, self.first_step, self.min_step),
            "max": np.where(empty, np.nan, self.max),
            "max_step": np.where(empty, self.first_step, self.max_step),
            "first": self.first,
            "first_step": self.first_step,
            "last": self.last,
            "last_step": self.last_step,
            "first_ts": self.first_ts / 1000.0,
            "last_ts": self.last_ts / 1000.0,
        }


FIELDS: dict[str, type] = {
    f.name: (np.float64 if f.name in ("sum", "min", "max", "first", "last") else np.int64) for f in fields(Aggregate)
}


def group_starts(keys: Sequence[np.ndarray]) -> np.ndarray:
    """Start index of each run of equal key tuples in already-sorted keys."""
    n = len(keys[0])
    change = np.zeros(n, bool)
    if n:
        change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def reduce(
    keys: Sequence[np.ndarray], agg: Aggregate, *, presorted: bool = False
) -> tuple[tuple[np.ndarray, ...], Aggregate, np.ndarray]:
    """Merge aggregates with equal key tuples.

    Returns the unique keys (sorted), their aggregates, and for every input index
    the index of the group it went into.  Input order is arrival order: among
    equal keys it decides ``first``/``last`` ties.  ``presorted`` skips the sort
    when the caller knows equal keys are already adjacent and in order.
    """
    n = len(agg)
    if n == 0:
        return tuple(np.asarray(k) for k in keys), agg, np.empty(0, np.int64)
    order = None
    if not presorted:
        order = np.lexsort(tuple(reversed(keys)))  # stable: arrival order kept within a key
        keys = [k[order] for k in keys]
        agg = agg.take(order)
    starts = group_starts(keys)
    is_start = np.zeros(n, np.int64)
    is_start[starts] = 1
    group = np.cumsum(is_start) - 1
    if order is not None:
        inverse = np.empty(n, np.int64)
        inverse[order] = group
        group = inverse
    lengths = np.diff(np.append(starts, n))
    at = np.arange(n)

    def spread(per_group: np.ndarray) -> np.ndarray:
        return np.repeat(per_group, lengths)

    lo = np.minimum.reduceat(agg.min, starts)
    hi = np.maximum.reduceat(agg.max, starts)
    first_step = np.minimum.reduceat(agg.first_step, starts)
    last_step = np.maximum.reduceat(agg.last_step, starts)
    first_at = np.minimum.reduceat(np.where(agg.first_step == spread(first_step), at, n), starts)
    last_at = np.maximum.reduceat(np.where(agg.last_step == spread(last_step), at, -1), starts)
    merged = Aggregate(
        count=np.add.reduceat(agg.count, starts),
        nonfinite=np.add.reduceat(agg.nonfinite, starts),
        sum=np.add.reduceat(agg.sum, starts),
        min=lo,
        min_step=np.minimum.reduceat(np.where(agg.min == spread(lo), agg.min_step, _BIG), starts),
        max=hi,
        max_step=np.minimum.reduceat(np.where(agg.max == spread(hi), agg.max_step, _BIG), starts),
        first=agg.first[first_at],
        first_step=first_step,
        last=agg.last[last_at],
        last_step=last_step,
        first_ts=np.minimum.reduceat(agg.first_ts, starts),
        last_ts=np.maximum.reduceat(agg.last_ts, starts),
    )
    return tuple(k[starts] for k in keys), merged, group
