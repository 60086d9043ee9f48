"""Per-series work of one batch: rollups, summaries and point alerts, for all of a run's series at once.

The run's touched series are loaded, stacked into arrays with a local series id,
processed in one vectorised pass, then split back into one state record per
series.  Points a series already absorbed (offset at or below its ``applied``)
are skipped, which is what makes a replay after a crash exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fleetlog.processors.core import alerts, rows
from fleetlog.processors.core.aggregate import Aggregate, reduce
from fleetlog.processors.core.batch import PointBatch
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.rollup import Buckets, bucket_points, update_rollups
from fleetlog.processors.core.state import RunState, SeriesState, key

__all__ = ["update_series"]


def update_series(
    config: ProcessorConfig,
    run_id: str,
    run: RunState,
    batch: PointBatch,
    names: list[tuple[str, int]],
    *,
    max_offset: int,
    flush: bool,
    get: Callable[[bytes], bytes | None],
    out: Any,
) -> None:
    """Process ``batch`` for the series ``names`` (the batch's own first, then any extra to flush)."""
    if not names:
        return
    states = []
    for metric, rank in names:
        raw = get(key("series", run_id, metric, rank))
        states.append((SeriesState.decode(raw) if raw else SeriesState()).for_resolutions(config.resolutions))
    applied = np.array([s.applied for s in states], np.int64)
    fresh = batch.offset > applied[batch.series] if len(batch) else np.zeros(0, bool)
    out.stats["replayed_points"] += int((~fresh).sum())
    pts = batch.select(fresh)

    new = bucket_points(pts.series, pts.step, pts.ts_ms, pts.value, config.resolutions)
    result = update_rollups(
        Buckets.concat(
            [Buckets(np.full(len(s.res), i, np.int64), s.res, s.bucket, s.buckets) for i, s in enumerate(states)]
        ),
        np.stack([s.frontier for s in states]),
        np.stack([s.evicted for s in states]),
        new,
        resolutions=config.resolutions,
        retained=config.retained_buckets,
        ended=run.ended,
        flush=np.full(len(states), flush),
    )
    run.late_points += int(result.late.sum())
    out.add("metric_rollups", rows.rollup_rows(run_id, names, result.emitted))

    touched, summaries = _summaries(states, new.take(new.res == config.resolutions[-1]))
    out.add("metric_summaries", rows.summary_rows(run_id, names, touched, summaries))

    found = _point_alerts(config, run, names, states, pts)
    out.add("alerts", rows.point_alert_rows(run_id, run, names, pts, found))

    bounds = np.searchsorted(result.state.series, np.arange(len(states) + 1))
    for i, s in enumerate(states):
        s.res, s.bucket = result.state.res[bounds[i] : bounds[i + 1]], result.state.bucket[bounds[i] : bounds[i + 1]]
        s.buckets = result.state.agg.take(np.arange(bounds[i], bounds[i + 1]))
        s.frontier, s.evicted = result.frontier[i], result.evicted[i]
        s.flags, s.history = int(found.flags[i]), found.history[i]
        s.late += int(result.late[i])
    for j, i in enumerate(touched.tolist()):
        states[i].summary = summaries.take(np.array([j]))
    in_batch = set(np.unique(batch.series).tolist())
    for i, ((metric, rank), s) in enumerate(zip(names, states, strict=True)):
        if i in in_batch:
            s.applied = max(s.applied, max_offset)
        out.writes[key("series", run_id, metric, rank)] = s.encode()


def _summaries(states: list[SeriesState], coarsest: Buckets) -> tuple[np.ndarray, Aggregate]:
    """Each touched series' summary: its stored one merged with this batch's (coarsest) buckets."""
    keys, fresh, _ = reduce((coarsest.series,), coarsest.agg, presorted=True)
    touched = keys[0]
    stored = [states[i].summary for i in touched.tolist()]
    owners = np.repeat(touched, [len(a) for a in stored]).astype(np.int64)
    merged_keys, merged, _ = reduce((np.concatenate([owners, touched]),), Aggregate.concat([*stored, fresh]))
    return merged_keys[0], merged


def _point_alerts(
    config: ProcessorConfig, run: RunState, names: list[tuple[str, int]], states: list[SeriesState], pts: PointBatch
) -> alerts.PointAlerts:
    limits = [run.rules.get(m, [None, None]) for m, _ in names]
    return alerts.detect(
        pts.series,
        pts.value,
        flags=np.array([s.flags for s in states], np.int64),
        above=np.array([np.nan if a is None else a for a, _ in limits], np.float64),
        below=np.array([np.nan if b is None else b for _, b in limits], np.float64),
        spike_enabled=np.array([bool(config.spike_metrics.search(m)) for m, _ in names]),
        history=[s.history for s in states],
        spike_window=config.spike_window,
        spike_factor=config.spike_factor,
    )
