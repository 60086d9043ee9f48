"""Per-run work across ranks of one batch: waiting steps per metric, and the straggler check.

State is one record per (run, metric) holding the points of steps that not every
rank has reported yet; ``ranks.aggregate_ranks`` does the arithmetic.  As for
series, each record skips points at or below its ``applied`` offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fleetlog.processors.core import ranks, rows
from fleetlog.processors.core.batch import PointBatch
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.state import CrossState, RunIndex, RunState, key

__all__ = ["find_stragglers", "update_cross"]


def update_cross(
    config: ProcessorConfig,
    run_id: str,
    run: RunState,
    batch: PointBatch,
    index: RunIndex,
    *,
    max_offset: int,
    flush: bool,
    get: Callable[[bytes], bytes | None],
    out: Any,
) -> None:
    """Aggregate the batch's points across ranks; ``flush`` emits every waiting step now."""
    metrics = [m for m in batch.metrics if config.rank_metrics.search(m)]
    if flush:
        metrics += [m for m in index.cross if m not in set(metrics)]
    if not metrics:
        return
    states = []
    for m in metrics:
        raw = get(key("ranks", run_id, m))
        states.append(CrossState.decode(raw) if raw else CrossState())
    points, seen = _points(batch, metrics, states)
    pending = {k: np.concatenate([s.pending[k] for s in states]) for k in ("step", "rank", "value", "ts")}
    pending["metric"] = np.repeat(np.arange(len(states)), [len(s.pending["step"]) for s in states])
    result = ranks.aggregate_ranks(
        points,
        pending,
        done_through=np.array([s.done_through for s in states], np.int64),
        multi_rank=np.array([len(s) > 1 for s in seen]),
        world_size=run.world_size,
        watermark_ms=max(run.last_point_ms, int(batch.ts_ms.max(initial=0))),
        timeout_ms=int(config.rank_timeout_seconds * 1000),
        flush=flush,
    )
    out.add("rank_aggregates", rows.cross_rows(run_id, metrics, result.rows))
    run.late_points += int(result.late.sum())
    in_batch = set(np.unique(points["metric"]).tolist())
    for i, (m, s) in enumerate(zip(metrics, states, strict=True)):
        mine = result.pending["metric"] == i
        s.pending = {k: result.pending[k][mine] for k in ("step", "rank", "value", "ts")}
        s.ranks_seen = np.array(sorted(seen[i]), np.int64)
        s.done_through = int(result.done_through[i])
        s.late += int(result.late[i])
        if i in in_batch:
            s.applied = max(s.applied, max_offset)
        out.writes[key("ranks", run_id, m)] = s.encode()
    waiting = len(result.pending["step"]) > 0
    run.cross_pending = waiting if flush else (run.cross_pending or waiting)


def _points(
    batch: PointBatch, metrics: list[str], states: list[CrossState]
) -> tuple[dict[str, np.ndarray], list[set[int]]]:
    """The batch's new points of the aggregated metrics (local metric ids), and each metric's ranks so far."""
    position = {m: i for i, m in enumerate(metrics)}
    local = np.array([position.get(m, -1) for m in batch.metrics] + [-1], np.int64)
    applied = np.array([s.applied for s in states], np.int64)
    metric = local[batch.series_metric[batch.series]]
    fresh = (metric >= 0) & (batch.offset > applied[metric])
    points = {
        "metric": metric[fresh],
        "step": batch.step[fresh],
        "rank": batch.series_rank[batch.series][fresh],
        "value": batch.value[fresh],
        "ts": batch.ts_ms[fresh],
    }
    seen = [set(s.ranks_seen.tolist()) for s in states]
    width = int(points["rank"].max(initial=0)) + 1
    for pair in np.unique(points["metric"] * width + points["rank"]).tolist():
        seen[pair // width].add(pair % width)
    return points, seen


def find_stragglers(config: ProcessorConfig, run_id: str, run: RunState, pts: PointBatch, out: Any) -> None:
    """Feed each rank's newest (step, time) of this batch to the straggler check."""
    rank = pts.series_rank[pts.series]
    order = np.lexsort((pts.step, rank))
    last = np.flatnonzero(np.append(rank[order][1:] != rank[order][:-1], True))
    at = order[last]
    progress = {int(r): (int(s), int(t)) for r, s, t in zip(rank[at], pts.step[at], pts.ts_ms[at], strict=True)}
    found = ranks.check_stragglers(
        progress, run.stragglers, factor=config.straggler_factor, patience=config.straggler_patience
    )
    out.add("alerts", rows.straggler_rows(run_id, run, found, config.straggler_factor))
