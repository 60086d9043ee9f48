"""One run's metric messages of a batch, flattened into sorted point columns.

Every per-point computation downstream (rollups, summaries, alerts, windows)
wants the points grouped by series -- one (metric, rank) pair -- and ordered by
step within a series, so the batch is sorted once here and everyone reads slices.
Points also remember the Kafka offset of their message, which is how a replay
after a crash recognises points that the recovered state already contains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleetlog.events import Envelope

__all__ = ["PointBatch", "build_batch"]


@dataclass(frozen=True)
class PointBatch:
    """Points sorted by (series, step, arrival); ``series_*`` describe each series id."""

    metrics: tuple[str, ...]
    hosts: tuple[str, ...]
    series_metric: np.ndarray
    series_rank: np.ndarray
    series: np.ndarray
    step: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray
    offset: np.ndarray
    host: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    def series_names(self) -> list[tuple[str, int]]:
        return [(self.metrics[m], int(r)) for m, r in zip(self.series_metric, self.series_rank, strict=True)]

    def select(self, keep: np.ndarray) -> PointBatch:
        """The points where ``keep`` is true (series tables unchanged)."""
        return PointBatch(
            metrics=self.metrics,
            hosts=self.hosts,
            series_metric=self.series_metric,
            series_rank=self.series_rank,
            series=self.series[keep],
            step=self.step[keep],
            ts_ms=self.ts_ms[keep],
            value=self.value[keep],
            offset=self.offset[keep],
            host=self.host[keep],
        )


def build_batch(messages: Sequence[tuple[int, Envelope]]) -> PointBatch:
    """Flatten ``(offset, metrics envelope)`` pairs of one run, in arrival order."""
    metrics: dict[str, int] = {}
    hosts: dict[str, int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    for offset, env in messages:
        batch = env.metrics
        n = len(batch)
        if not n:
            continue
        lut = np.fromiter((metrics.setdefault(m, len(metrics)) for m in batch.names), np.int64, len(batch.names))
        host = hosts.setdefault(env.source.host, len(hosts))
        parts.append(
            (
                lut[batch.name_idx],
                np.full(n, env.source.rank, np.int64),
                batch.step,
                batch.ts_ms,
                batch.value,
                np.full(n, offset, np.int64),
                np.full(n, host, np.int64),
            )
        )
    if not parts:
        cols = [np.empty(0, t) for t in (np.int64, np.int64, np.int64, np.int64, np.float64, np.int64, np.int64)]
    else:
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    metric, rank, step, ts, value, offset, host = cols
    # One id per (metric, rank); ranks are small, so the pair packs into one int64.
    pair = metric * (int(rank.max(initial=0)) + 1) + rank
    uniq, series = np.unique(pair, return_inverse=True)
    order = np.lexsort((step, series))
    width = int(rank.max(initial=0)) + 1
    return PointBatch(
        metrics=tuple(metrics),
        hosts=tuple(hosts),
        series_metric=uniq // width,
        series_rank=uniq % width,
        series=series[order].astype(np.int64),
        step=step[order],
        ts_ms=ts[order],
        value=value[order],
        offset=offset[order],
        host=host[order],
    )
