"""One run's batch in, derived rows and new state out: the processors' arithmetic, without Kafka.

``RunEngine.process`` takes a run's decoded messages of one batch (metrics and
events with their offsets) and a ``get`` function for stored state, and returns
an ``Output``: rows per derived table and the state writes.  It never writes
anything itself, so the caller can make the rows durable first and only then
the state -- a crash in between replays the batch, and the per-key ``applied``
offsets make that replay exact.  ``RunEngine.tick`` is the clock-driven part:
lost runs, late cross-rank flushes, and forgetting long-finished runs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fleetlog.processors.core import rows, windows
from fleetlog.processors.core.batch import PointBatch, build_batch
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.cross import find_stragglers, update_cross
from fleetlog.processors.core.lifecycle import apply_event, run_row
from fleetlog.processors.core.series import update_series
from fleetlog.processors.core.state import RunIndex, RunState, key

from fleetlog.events import Envelope

__all__ = ["Getter", "Output", "RunEngine"]

log = logging.getLogger("fleetlog.processor")

Getter = Callable[[bytes], "bytes | None"]
Message = tuple[int, Envelope]


@dataclass
class Output:
    """What one call produced: rows per table (columns) and state writes (``None`` deletes)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    writes: dict[bytes, bytes | None] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    due: float | None = None  # processor time when ``tick`` has something to do for this run

    def add(self, table: str, columns: dict[str, Any]) -> None:
        if columns and len(next(iter(columns.values()))):
            self.rows.setdefault(table, []).append(columns)


class RunEngine:
    """Stateless between calls: everything it knows about a run comes through ``get``."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config

    # -- the batch path -----------------------------------------------------------------------
    def process(
        self,
        run_id: str,
        partition: int,
        metrics: Sequence[Message],
        events: Sequence[Message],
        *,
        now: float,
        get: Getter,
        mark_lost: bool = False,
        flush_cross: bool = False,
    ) -> Output:
        out = Output()
        raw = get(key("run", run_id))
        run = RunState.decode(raw) if raw else RunState()
        run.partition = partition
        run.revision += 1
        was_ended = run.ended
        touched_windows: set[str] = set()
        for offset, env in events:
            if offset <= run.events_applied:
                out.stats["replayed_events"] += 1
                continue
            self._identify(run, env, now)
            apply_event(run, env)
            if env.kind == "heartbeat":
                touched_windows |= windows.add_heartbeat(
                    run.windows,
                    run.window_marks,
                    sizes=self.config.window_seconds,
                    time_s=run.last_heartbeat,
                    host=env.source.host,
                )
        if events:
            run.events_applied = max(run.events_applied, max(o for o, _ in events))
        for _, env in metrics:
            self._identify(run, env, now)
        if mark_lost and not run.ended:
            run.lost = True
            out.add("alerts", rows.lost_alert(run_id, run, now, self.config.lost_after_seconds))
        flush = run.ended and not was_ended
        batch = build_batch(metrics)
        index = self._index(run_id, get, batch, run, out)
        series_names = batch.series_names()
        if flush:
            series_names += [s for s in index.series if s not in set(series_names)]
        max_offset = max((o for o, _ in metrics), default=-1)
        update_series(
            self.config, run_id, run, batch, series_names, max_offset=max_offset, flush=flush, get=get, out=out
        )
        # Ranks may still be sending when rank 0 reports the end: only a lost run, or the
        # clock (tick) once the run has been quiet for the rank timeout, flushes waiting steps.
        cross_flush = flush_cross or (flush and run.lost)
        if run.world_size > 1 and (len(batch) or (run.cross_pending and cross_flush)):
            update_cross(
                self.config, run_id, run, batch, index, max_offset=max_offset, flush=cross_flush, get=get, out=out
            )
        self._run_level(run_id, run, batch, touched_windows, out)
        if metrics:
            run.metrics_applied = max(run.metrics_applied, max_offset)
        out.add("run_summaries", {k: [v] for k, v in run_row(run_id, run, now).items()})
        out.writes[key("run", run_id)] = run.encode()
        out.due = self.due(run)
        return out

    def due(self, run: RunState, *, since: float = 0.0) -> float:
        """When ``tick`` next needs to look at this run (processor clock; not before ``since`` + its wait)."""
        cfg = self.config
        if not run.ended:
            wait = cfg.lost_after_seconds
        elif run.cross_pending:
            wait = cfg.rank_timeout_seconds
        else:
            wait = cfg.state_retention_seconds
        return max(run.last_received, since) + wait

    # -- the clock path ---------------------------------------------------------------------------
    def tick(self, run_id: str, *, now: float, get: Getter, watching_since: float = 0.0) -> Output:
        """Time-driven changes to one run; an empty output (with ``due``) when nothing is due yet.

        ``watching_since`` is when this worker took the run's partition: a run is
        not judged silent for longer than this worker has been listening, so a
        backlog still being worked off after a restart cannot make runs Lost.
        """
        raw = get(key("run", run_id))
        if raw is None:
            return Output()
        run = RunState.decode(raw)
        cfg = self.config
        quiet = now - max(run.last_received, watching_since)
        if not run.ended and quiet > cfg.lost_after_seconds:
            return self.process(run_id, run.partition, [], [], now=now, get=get, mark_lost=True)
        if run.ended and run.cross_pending and quiet > cfg.rank_timeout_seconds:
            return self.process(run_id, run.partition, [], [], now=now, get=get, flush_cross=True)
        if run.ended and quiet > cfg.state_retention_seconds:
            return self._forget(run_id, get)
        return Output(due=self.due(run, since=watching_since))

    def _forget(self, run_id: str, get: Getter) -> Output:
        """Delete every key of a long-finished run (its rows stay in ClickHouse)."""
        out = Output()
        raw = get(key("index", run_id))
        index = RunIndex.decode(raw) if raw else RunIndex()
        for metric, rank in index.series:
            out.writes[key("series", run_id, metric, rank)] = None
        for metric in index.cross:
            out.writes[key("ranks", run_id, metric)] = None
        out.writes[key("index", run_id)] = None
        out.writes[key("run", run_id)] = None
        out.stats["runs_forgotten"] += 1
        return out

    def _identify(self, run: RunState, env: Envelope, now: float) -> None:
        run.project = run.project or env.project
        run.experiment = run.experiment or env.experiment
        run.world_size = max(run.world_size, env.source.world_size)
        if env.source.rank not in run.ranks:
            run.ranks.append(env.source.rank)
        run.last_received = now
        run.lost = False  # any sign of life undoes a Lost verdict

    def _index(self, run_id: str, get: Getter, batch: PointBatch, run: RunState, out: Output) -> RunIndex:
        raw = get(key("index", run_id))
        index = RunIndex.decode(raw) if raw else RunIndex()
        known, crossed = set(index.series), set(index.cross)
        new_series = [s for s in batch.series_names() if s not in known]
        new_cross = []
        if run.world_size > 1:
            new_cross = [m for m in batch.metrics if m not in crossed and self.config.rank_metrics.search(m)]
        if new_series or new_cross:
            index.series += new_series
            index.cross += new_cross
            out.writes[key("index", run_id)] = index.encode()
        return index

    # -- the run as a whole: counters, windows, stragglers -------------------------------------
    def _run_level(self, run_id: str, run: RunState, batch: PointBatch, touched: set[str], out: Output) -> None:
        cfg = self.config
        fresh = batch.offset > run.metrics_applied
        pts = batch.select(fresh)
        if len(pts):
            run.points += len(pts)
            lo, hi = int(pts.ts_ms.min()), int(pts.ts_ms.max())
            run.first_point_ms = min(run.first_point_ms or lo, lo)
            run.last_point_ms = max(run.last_point_ms, hi)
            run.last_step = max(run.last_step, int(pts.step.max()))
            gpu_metric = np.array([bool(cfg.gpu_metrics.search(m)) for m in pts.metrics] + [False])
            metric = pts.series_metric[pts.series]
            added, late = windows.add_points(
                run.windows,
                run.window_marks,
                sizes=cfg.window_seconds,
                ts_ms=pts.ts_ms,
                host=pts.host,
                hosts=pts.hosts,
                gpu=gpu_metric[metric],
                value=pts.value,
            )
            touched |= added
            run.late_points += late
            if run.world_size > 1:
                find_stragglers(cfg, run_id, run, pts, out)
        out.add("fleet_windows", rows.window_rows(run_id, run, touched))
        out.stats["points"] += len(pts)
