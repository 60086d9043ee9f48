"""Derived rows as columns, shaped exactly like the ClickHouse tables in ``fleetlog/store/schema_derived.py``.

Columns are numpy arrays, dictionary columns (a run id or metric name repeated
over many rows is one string plus an index per row, never a Python object per
row) or lists; times are unix seconds (floats), which is what ClickHouse turns
into ``DateTime64`` on insert.  ``version`` columns only grow for a given row
key, so ``ReplacingMergeTree`` keeps the newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fleetlog.processors.core.aggregate import Aggregate
from fleetlog.processors.core.alerts import RULES, PointAlerts
from fleetlog.processors.core.batch import PointBatch
from fleetlog.processors.core.ranks import Straggler
from fleetlog.processors.core.rollup import Buckets
from fleetlog.processors.core.state import RunState
from fleetlog.processors.core.windows import window_rows as _window_columns

from fleetlog.events import DictColumn

__all__ = [
    "cross_rows",
    "lost_alert",
    "point_alert_rows",
    "rollup_rows",
    "straggler_rows",
    "summary_rows",
    "window_rows",
]

Columns = dict[str, Any]


def _series_columns(run_id: str, names: Sequence[tuple[str, int]], series: np.ndarray) -> Columns:
    per_series = DictColumn.of([m for m, _ in names] + [""])  # one entry per metric, not per (metric, rank)
    metric = DictColumn(per_series.values, per_series.indices[series])
    rank = np.array([r for _, r in names] + [0], np.int64)[series]
    return {"run_id": DictColumn.repeat(run_id, len(series)), "metric": metric, "rank": rank}


def rollup_rows(run_id: str, names: Sequence[tuple[str, int]], emitted: Buckets) -> Columns:
    return {
        **_series_columns(run_id, names, emitted.series),
        "resolution": emitted.res,
        "bucket": emitted.bucket,
        **emitted.agg.columns(),
        "version": emitted.agg.count,
    }


def summary_rows(run_id: str, names: Sequence[tuple[str, int]], series: np.ndarray, agg: Aggregate) -> Columns:
    return {**_series_columns(run_id, names, series), **agg.columns(), "version": agg.count}


def _alerts(n: int, **columns: Any) -> Columns:
    """Alert columns with defaults; every alert table row has all of them."""
    out = {
        "run_id": [""] * n,
        "experiment": [""] * n,
        "metric": [""] * n,
        "rank": np.zeros(n, np.int64),
        "step": np.zeros(n, np.int64),
        "ts": np.zeros(n),
        "rule": [""] * n,
        "value": np.full(n, np.nan),
        "threshold": np.full(n, np.nan),
        "message": [""] * n,
    }
    out.update(columns)
    return out


def point_alert_rows(
    run_id: str, run: RunState, names: Sequence[tuple[str, int]], pts: PointBatch, found: PointAlerts
) -> Columns:
    i = found.index
    if not len(i):
        return {}
    series = pts.series[i]
    cols = _series_columns(run_id, names, series)
    rules = [RULES[int(r)] for r in found.rule]
    values = pts.value[i]
    messages = [
        _message(rule, metric, float(v), float(t))
        for rule, metric, v, t in zip(rules, cols["metric"].tolist(), values, found.threshold, strict=True)
    ]
    return _alerts(
        len(i),
        run_id=cols["run_id"],
        experiment=[run.experiment] * len(i),
        metric=cols["metric"],
        rank=cols["rank"],
        step=pts.step[i],
        ts=pts.ts_ms[i] / 1000.0,
        rule=rules,
        value=values,
        threshold=found.threshold,
        message=messages,
    )


def _message(rule: str, metric: str, value: float, limit: float) -> str:
    if rule == "nonfinite":
        return f"{metric} is {value}"
    if rule == "spike":
        return f"{metric} = {value:.6g} spiked above {limit:.6g} (spike factor x rolling median)"
    word = "above" if rule == "above" else "below"
    return f"{metric} = {value:.6g} crossed {word} {limit:.6g}"


def lost_alert(run_id: str, run: RunState, now: float, timeout: float) -> Columns:
    silent = now - run.last_received
    return _alerts(
        1,
        run_id=[run_id],
        experiment=[run.experiment],
        step=np.array([run.last_step]),
        ts=np.array([now]),
        rule=["lost"],
        value=np.array([silent]),
        threshold=np.array([timeout]),
        message=[f"no heartbeat or data for {silent:.0f} s (timeout {timeout:g} s) and the run never finished"],
    )


def straggler_rows(run_id: str, run: RunState, found: list[Straggler], factor: float) -> Columns:
    if not found:
        return {}
    n = len(found)
    return _alerts(
        n,
        run_id=[run_id] * n,
        experiment=[run.experiment] * n,
        rank=np.array([s.rank for s in found], np.int64),
        step=np.array([s.step for s in found], np.int64),
        ts=np.array([s.ts_ms / 1000.0 for s in found]),
        rule=["straggler"] * n,
        value=np.array([s.ratio for s in found]),
        threshold=np.full(n, factor),
        message=[f"rank {s.rank} step time is {s.ratio:.2f}x the median across ranks" for s in found],
    )


def cross_rows(run_id: str, metrics: Sequence[str], found: dict[str, np.ndarray]) -> Columns:
    n = len(found["step"])
    if not n:
        return {}
    names = DictColumn.of([*metrics, ""])
    return {
        "run_id": DictColumn.repeat(run_id, n),
        "metric": DictColumn(names.values, names.indices[found["metric"].astype(np.int64)]),
        "step": found["step"],
        "ranks": found["ranks"],
        "mean": found["mean"],
        "min": found["min"],
        "max": found["max"],
        "std": found["std"],
        "slowest_rank": found["slowest_rank"],
        "spread_seconds": found["spread_ms"] / 1000.0,
        "ts": found["ts"] / 1000.0,
        "complete": found["complete"],
    }


def window_rows(run_id: str, run: RunState, touched: set[str]) -> Columns:
    cols = _window_columns(run.windows, touched, experiment=run.experiment)
    n = len(cols["points"])
    return {"run_id": [run_id] * n, "project": [run.project] * n, **cols, "version": [run.revision] * n}
