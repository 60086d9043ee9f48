"""What runs now: throughput, running runs, and the processors' verdicts on lost runs and stragglers.

"Lost" and "straggler" are decided once, by the stream processors
(``fleetlog/processors/core``), with the settings they run under
(``FLEETLOG_LOST_RUN_TIMEOUT_SECONDS``, ``FLEETLOG_STRAGGLER_FACTOR``): a run is Lost when its
``run_summaries`` row says so, and a rank straggles when the processors raised a
``straggler`` alert for it and it is still behind its run's leading rank.  This module
reads those verdicts; it does not decide them again.

A run no processor has summarised yet (a store without processors, or one that has not
caught up) gets the same two rules evaluated here from raw points, marked
``source = "points"`` instead of ``"processors"``: silent (no point, no heartbeat) for
longer than the timeout, and a rank whose step time over the last window is above
``straggler_factor`` times the median across its run's ranks.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fleetlog.config import Settings
from fleetlog.query.client import df, tables_present
from fleetlog.query.runs import runs
from fleetlog.store.schema_tables import spec

__all__ = ["fleet"]

_SUMMARIES = spec("run_summaries")
_ALERTS = spec("alerts")
_HEARTBEATS = spec("run_heartbeats")
STRAGGLER_COLUMNS = ["run_id", "rank", "step", "lead_step", "behind", "ratio", "source"]


def fleet(
    *,
    window_seconds: float = 60.0,
    lost_after_seconds: float | None = None,
    straggler_factor: float | None = None,
    settings: Settings | None = None,
) -> dict[str, pd.DataFrame]:
    """What runs now: throughput, running runs with their ranks, lost runs and stragglers.

    ``throughput``: points per second in 5-second windows over the last 10 minutes.
    ``active``: each Running run's points in the last ``window_seconds``, latest step, and ``source``
    (``processors`` where they cover the run, else ``points``). ``lost``: the active runs the processors
    marked Lost. ``stragglers``: ranks the processors flagged that are still behind their run's lead.
    ``lost_after_seconds`` and ``straggler_factor`` (default: the settings the processors use) apply
    only to runs no processor covers, where the same rules are evaluated from raw points.
    """
    settings = settings or Settings.from_env()
    lost_after = settings.processor.lost_run_timeout_seconds if lost_after_seconds is None else lost_after_seconds
    factor = settings.processor.straggler_factor if straggler_factor is None else straggler_factor
    present = tables_present(settings)
    running = runs(status="Running", limit=None, settings=settings)
    ids = running["run_id"].tolist()
    ranks = _ranks(settings, window_seconds)
    active = _active(running, ranks, _verdicts(settings, ids, present), window_seconds)
    covered = active["source"] == "processors"
    is_lost = np.where(covered, active["verdict"] == "Lost", active["silent_seconds"] > lost_after)
    active = active.drop(columns=["verdict", "heartbeat"])
    covered_ids = set(active.loc[covered, "run_id"])
    found = [
        _flagged(settings, sorted(covered_ids), ranks, present),
        _slow_ranks(ranks[~ranks["run_id"].isin(covered_ids)] if not ranks.empty else ranks, factor),
    ]
    found = [frame for frame in found if not frame.empty]
    stragglers = pd.concat(found) if found else pd.DataFrame(columns=STRAGGLER_COLUMNS)
    return {
        "throughput": _throughput(settings),
        "active": active.reset_index(drop=True),
        "lost": active[is_lost].reset_index(drop=True),
        "stragglers": stragglers.sort_values(["run_id", "rank"]).reset_index(drop=True),
    }


def _active(running: pd.DataFrame, ranks: pd.DataFrame, verdicts: pd.DataFrame, window_seconds: float) -> pd.DataFrame:
    """Each running run with its latest step, points per second, when it was last seen, and whose word counts."""
    per_run = (
        ranks.groupby("run_id")
        .agg(step=("step", "max"), last_ts=("last_ts", "max"), recent_points=("recent_points", "sum"))
        .reset_index()
        if not ranks.empty
        else pd.DataFrame(columns=["run_id", "step", "last_ts", "recent_points"])
    )
    active = running[["run_id", "name", "experiment", "start_time", "world_size"]].merge(
        per_run, on="run_id", how="left"
    )
    active = active.merge(verdicts, on="run_id", how="left")
    seen = [pd.to_datetime(active[c], utc=True) for c in ("last_ts", "heartbeat", "start_time")]
    active["last_seen"] = pd.concat(seen, axis=1).max(axis=1)
    active["silent_seconds"] = (pd.Timestamp.now(tz="UTC") - active["last_seen"]).dt.total_seconds()
    active["points_per_second"] = active["recent_points"].fillna(0) / window_seconds
    active["source"] = np.where(active["verdict"].notna(), "processors", "points")
    return active


def _throughput(settings: Settings) -> pd.DataFrame:
    return df(
        settings,
        "SELECT toStartOfInterval(ts, INTERVAL 5 SECOND) AS time, count() / 5 AS points_per_second "
        "FROM metric_points WHERE ts >= now64(3) - INTERVAL 10 MINUTE GROUP BY time ORDER BY time WITH FILL "
        "FROM toStartOfInterval(toDateTime(now(), 'UTC') - INTERVAL 10 MINUTE, INTERVAL 5 SECOND) "
        "TO toDateTime(now(), 'UTC') STEP 5",
    )


def _ranks(settings: Settings, window_seconds: float) -> pd.DataFrame:
    """Per running run and rank: latest step and point, points in the window, and the window's step time."""
    return df(
        settings,
        # Aggregates get names of their own inside: an alias equal to a column name would be taken for it.
        "SELECT run_id, rank, step_ AS step, ts_ AS last_ts, n_ AS recent_points, "
        "if(hi_ > lo_, dateDiff('millisecond', t0_, t1_) / 1000 / (hi_ - lo_), nan) AS step_seconds FROM "
        "(SELECT run_id, rank, max(step) AS step_, max(ts) AS ts_, countIf(recent) AS n_, minIf(step, recent) AS lo_, "
        "maxIf(step, recent) AS hi_, minIf(ts, recent) AS t0_, maxIf(ts, recent) AS t1_ "
        "FROM (SELECT run_id, rank, step, ts, ts >= now64(3) - toIntervalSecond({w:UInt32}) AS recent "
        "FROM metric_points WHERE run_id IN (SELECT run_id FROM runs FINAL WHERE status = 'Running')) "
        "GROUP BY run_id, rank) ORDER BY run_id, rank",
        {"w": math.ceil(window_seconds)},
    )


def _verdicts(settings: Settings, ids: list[str], present: frozenset[str]) -> pd.DataFrame:
    """Per running run: the processors' status (``verdict``, absent where they have no row) and last heartbeat."""
    out = pd.DataFrame({"run_id": ids, "verdict": None, "heartbeat": pd.NaT})
    if not ids:
        return out
    if _SUMMARIES.name in present:
        kept = df(
            settings,
            f"SELECT run_id, status AS verdict, last_heartbeat FROM {_SUMMARIES.name}{_SUMMARIES.final} "
            "WHERE run_id IN {ids:Array(String)}",
            {"ids": ids},
        ).set_index("run_id")
        out["verdict"] = out["run_id"].map(kept["verdict"])
        out["heartbeat"] = pd.to_datetime(out["run_id"].map(kept["last_heartbeat"]), utc=True)
    todo = out.loc[out["verdict"].isna(), "run_id"].tolist()
    if todo and _HEARTBEATS.name in present:
        beats = df(
            settings,
            f"SELECT run_id, max(ts) AS heartbeat FROM {_HEARTBEATS.name}{_HEARTBEATS.final} "
            "WHERE run_id IN {ids:Array(String)} GROUP BY run_id",
            {"ids": todo},
        ).set_index("run_id")["heartbeat"]
        fill = pd.to_datetime(out["run_id"].map(beats), utc=True)
        out["heartbeat"] = out["heartbeat"].where(out["verdict"].notna(), fill)
    return out


def _flagged(settings: Settings, ids: list[str], ranks: pd.DataFrame, present: frozenset[str]) -> pd.DataFrame:
    """The processors' straggler alerts for these runs, each rank's latest, while it is still behind."""
    if not ids or _ALERTS.name not in present or ranks.empty:
        return pd.DataFrame(columns=STRAGGLER_COLUMNS)
    raised = df(
        settings,
        f"SELECT run_id, rank, argMax(value, ts) AS ratio FROM {_ALERTS.name}{_ALERTS.final} "
        "WHERE rule = 'straggler' AND run_id IN {ids:Array(String)} GROUP BY run_id, rank",
        {"ids": ids},
    )
    return _behind(ranks.merge(raised, on=["run_id", "rank"], how="left"), "processors", raised_only=True)


def _slow_ranks(ranks: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The processors' rule on raw points: step time over the window above ``factor`` x the ranks' median."""
    if ranks.empty:
        return pd.DataFrame(columns=STRAGGLER_COLUMNS)
    timed = ranks[ranks["step_seconds"].notna()]
    median = timed.groupby("run_id")["step_seconds"].transform("median")
    advanced = timed.groupby("run_id")["rank"].transform("size")
    ratio = timed["step_seconds"] / median
    slow = timed.assign(ratio=ratio)[(advanced >= 2) & (median > 0) & (timed["step_seconds"] > factor * median)]
    if slow.empty:
        return pd.DataFrame(columns=STRAGGLER_COLUMNS)
    lead = ranks.groupby("run_id")["step"].max()
    return _behind(slow.assign(lead_step=slow["run_id"].map(lead)), "points")


def _behind(frame: pd.DataFrame, source: str, *, raised_only: bool = False) -> pd.DataFrame:
    if raised_only:
        frame = frame.assign(lead_step=frame.groupby("run_id")["step"].transform("max"))
        frame = frame[frame["ratio"].notna() & (frame["step"] < frame["lead_step"])]
    if frame.empty:
        return pd.DataFrame(columns=STRAGGLER_COLUMNS)
    out = frame.assign(behind=frame["lead_step"] - frame["step"], source=source)
    return out[STRAGGLER_COLUMNS]
