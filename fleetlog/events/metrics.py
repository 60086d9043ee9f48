"""Metric batches: a table of names plus four parallel little-endian arrays, carried as raw bytes.

Decoding a batch of 30,000 points is four ``numpy.frombuffer`` calls instead of
30,000 Python objects.  The envelope around a batch is :mod:`fleetlog.events.envelope`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetlog.errors import InvalidEvent
from fleetlog.events.limits import F64, I64, IDX, MAX_NAMES, require

__all__ = ["MetricBatch", "metric_bodies", "read_metric_batch"]

_POINT_BYTES = IDX.itemsize + 2 * I64.itemsize + F64.itemsize


@dataclass(frozen=True, slots=True)
class MetricBatch:
    """Decoded points: ``names[name_idx[i]]`` is the metric of point ``i``."""

    names: tuple[str, ...]
    name_idx: np.ndarray
    step: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    def metric_names(self) -> np.ndarray:
        """One name per point, as an object array (for inserting a String column)."""
        return np.asarray(self.names, dtype=object)[self.name_idx]


def metric_bodies(
    names: list[str] | tuple[str, ...],
    name_idx: np.ndarray,
    step: np.ndarray,
    ts_ms: np.ndarray,
    value: np.ndarray,
    *,
    max_bytes: int,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Split points into message bodies of at most about ``max_bytes``; yield ``(points, body)``.

    Only the names a chunk uses travel with it: a chunk is decodable on its own.
    """
    n = len(value)
    names_bytes = sum(len(x.encode()) + 5 for x in names) + 512
    per_msg = max(1, (max_bytes - names_bytes) // _POINT_BYTES)
    for start in range(0, max(n, 1), per_msg):
        stop = min(n, start + per_msg)
        idx = np.asarray(name_idx[start:stop])
        used, local = idx, idx
        if len(idx):  # np.unique(idx, return_inverse=True) without its sort: a count per name is O(n)
            used = np.flatnonzero(np.bincount(idx, minlength=len(names)))
            remap = np.zeros(max(len(names), int(used[-1]) + 1), dtype=IDX)
            remap[used] = np.arange(len(used), dtype=IDX)
            local = remap[idx]
        yield (
            stop - start,
            {
                "names": [names[j] for j in used.tolist()],
                "idx": local.astype(IDX, copy=False).tobytes(),
                "step": np.asarray(step[start:stop], dtype=I64).tobytes(),
                "ts": np.asarray(ts_ms[start:stop], dtype=I64).tobytes(),
                "value": np.asarray(value[start:stop], dtype=F64).tobytes(),
            },
        )


def read_metric_batch(body: Any) -> MetricBatch:
    """A decoded ``metrics`` body -> :class:`MetricBatch`; every part type-checked, unknown keys dropped."""
    if not isinstance(body, dict):
        raise InvalidEvent("a metrics event needs a map body")
    names = require(body, "names", list)
    if len(names) > MAX_NAMES or not all(isinstance(x, str) for x in names):
        raise InvalidEvent("'names' must be a list of strings")
    cols = {}
    for key, dtype in (("idx", IDX), ("step", I64), ("ts", I64), ("value", F64)):
        buf = require(body, key, bytes)
        if len(buf) % dtype.itemsize:
            raise InvalidEvent(f"column {key!r} is {len(buf)} bytes, not a multiple of {dtype.itemsize}")
        cols[key] = np.frombuffer(buf, dtype=dtype)
    n = len(cols["value"])
    if any(len(c) != n for c in cols.values()):
        raise InvalidEvent("metric columns have different lengths")
    if n and int(cols["idx"].max()) >= len(names):
        raise InvalidEvent("a name index points past the names table")
    return MetricBatch(
        names=tuple(names),
        name_idx=cols["idx"],
        step=cols["step"],
        ts_ms=cols["ts"],
        value=cols["value"],
    )
