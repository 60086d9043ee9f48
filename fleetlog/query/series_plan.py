"""Metric series at the right resolution: raw points, rollup buckets, or server-side downsampling.

A chart needs about as many points as it has pixels, whatever the series holds. For
the range asked, :func:`plan_resolution` counts the points of the longest series; if
they fit it reads them raw, else it picks a bucket of ``B`` steps (a 1-2-5 number, so
zoom levels repeat and runs compared on one chart share buckets). The buckets come
from the coarsest ``metric_rollups`` resolution that divides ``B`` (merging its rows:
min of mins, max of maxes, sum of sums...) or, when there is none, from grouping raw
points by ``intDiv(step, B)`` on the server. A rollup that lags behind a running
series is completed from raw points past what it covers.

Planning costs one round trip when the processors keep ``metric_summaries``: each series'
length and span come from its summary row, and the rollups' coverage rides in the same
query; without summaries (or for a step or time range) the points are scanned instead.

Every bucket carries ``value`` (mean of the finite values), ``min``/``max`` (the
envelope), ``count``, ``nonfinite`` (NaN/inf seen), ``last`` and ``step`` (its first).
Rollup and summary columns are the schema's (``fleetlog/store/schema_derived.py``):
``bucket`` is a bucket index (its first step is ``bucket * resolution``) and
``first_step``/``last_step`` the span of steps it holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from fleetlog.store.schema_tables import spec

__all__ = ["Plan", "Resolution", "nice_bucket", "plan_resolution", "read_series"]

Query = Callable[[str, Mapping[str, Any]], pd.DataFrame]
COLUMNS = ["run_id", "rank", "step", "value", "min", "max", "count", "nonfinite", "last", "ts"]
ROLLUPS = spec("metric_rollups")
SUMMARIES = spec("metric_summaries")


@dataclass(frozen=True)
class Resolution:
    """What a series read used: ``source`` raw/rollup/downsample, ``bucket`` steps per point."""

    source: str
    bucket: int | None
    table: str
    raw_points: int
    step_range: tuple[int, int] | None
    rollup_resolution: int | None = None
    extent: str = "points"  # where the series' length and span came from: "points" scanned, or "summaries"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A series read decided: where from, the condition on the points, and its bound values."""

    resolution: Resolution
    where: str
    bound: Mapping[str, Any] = field(default_factory=dict)
    rollup_until: int | None = None  # last step the rollup part covers; raw points after it
    raw_tail: bool = True  # raw points past ``rollup_until`` complete a lagging rollup


def nice_bucket(span: int, points: int) -> int:
    """The smallest 1-2-5 x 10^k bucket that splits ``span`` steps into at most ``points``."""
    target = max(span / max(points, 1), 1.0)
    exp = 10 ** math.floor(math.log10(target))
    for mult in (1, 2, 5, 10):
        if mult * exp >= target:
            return int(mult * exp)
    return int(10 * exp)  # pragma: no cover - the loop always returns


def _epoch_ms(when: Any) -> int:
    """A time (datetime, Timestamp, ISO text, or unix seconds) as UTC epoch milliseconds; naive means UTC."""
    if isinstance(when, (int, float)):
        return int(when * 1000)
    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


def _where(
    ids: list[str],
    name: str,
    step_range: tuple[int | None, int | None] | None,
    time_range: tuple[Any, Any] | None,
    rank: int | None,
) -> tuple[str, dict[str, Any]]:
    bound: dict[str, Any] = {"ids": ids, "name": name}
    clauses = ["run_id IN {ids:Array(String)}", "metric = {name:String}"]
    if rank is not None:
        bound["rank"] = int(rank)
        clauses.append("rank = {rank:UInt32}")
    lo, hi = step_range or (None, None)
    if lo is not None:
        bound["lo"] = int(lo)
        clauses.append("step >= {lo:Int64}")
    if hi is not None:
        bound["hi"] = int(hi)
        clauses.append("step <= {hi:Int64}")
    t0, t1 = time_range or (None, None)
    if t0 is not None:
        bound["t0"] = _epoch_ms(t0)
        clauses.append("ts >= fromUnixTimestamp64Milli({t0:Int64}, 'UTC')")
    if t1 is not None:
        bound["t1"] = _epoch_ms(t1)
        clauses.append("ts <= fromUnixTimestamp64Milli({t1:Int64}, 'UTC')")
    return " AND ".join(clauses), bound


def plan_resolution(
    query: Query,
    present: frozenset[str],
    ids: list[str],
    name: str,
    *,
    resolution: str | int,
    step_range: tuple[int | None, int | None] | None,
    time_range: tuple[Any, Any] | None,
    points: int,
    rank: int | None,
) -> Plan:
    """Decide raw or bucketed, and from which table (of those ``present`` in the store), for this request."""
    if resolution not in ("auto", "raw") and not (isinstance(resolution, int) and resolution >= 1):
        raise ValueError(f"resolution must be 'auto', 'raw' or a bucket size in steps (int >= 1), not {resolution!r}")
    where, bound = _where(ids, name, step_range, time_range, rank)
    rollups = ROLLUPS.name in present and time_range is None
    extent, coverage, source = None, None, "points"
    if step_range is None and time_range is None and SUMMARIES.name in present:
        found = _kept_extent(query, where, bound, len(set(ids)), rollups)
        if found is not None:
            (extent, coverage), source = found, "summaries"
    if extent is None:
        extent = query(
            "SELECT min(lo) AS lo, max(hi) AS hi, max(n) AS n, count() AS series FROM (SELECT min(step) AS lo, "
            f"max(step) AS hi, count() AS n FROM metric_points WHERE {where} GROUP BY run_id, rank)",
            bound,
        )
    n = int(extent["n"].iloc[0]) if len(extent) and not pd.isna(extent["n"].iloc[0]) else 0
    if n == 0:
        return Plan(Resolution("raw", None, "metric_points", 0, None, extent=source), where, bound)
    lo, hi = int(extent["lo"].iloc[0]), int(extent["hi"].iloc[0])
    if resolution == "raw" or (resolution == "auto" and n <= points) or resolution == 1:
        return Plan(Resolution("raw", None, "metric_points", n, (lo, hi), extent=source), where, bound)
    bucket = int(resolution) if isinstance(resolution, int) else nice_bucket(hi - lo + 1, points)
    series = int(extent["series"].iloc[0])
    if rollups:
        if coverage is None:
            coverage = query(_coverage_sql(bound), bound)
        plan = _rollup_plan(coverage, where, bound, bucket, n, (lo, hi), series, source)
        if plan is not None:
            return plan
    res = Resolution("downsample", bucket, "metric_points", n, (lo, hi), extent=source)
    return Plan(res, where, {**bound, "b": bucket})


def _kept_extent(
    query: Query, where: str, bound: dict[str, Any], runs: int, rollups: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """Each series' step span and length from the processors' summaries instead of scanning its points,
    with the rollups' coverage in the same round trip when there are rollups.

    A summary is a second or two behind the points, so a running series may hold a few more
    points than it says (the chart gets a few more than asked). None when a run asked for has
    no summary of the metric (no processor ran for it): the caller scans the points then.
    """
    sql = (
        "SELECT toUInt32(0) AS r, min(first_step) AS lo, max(last_step) AS hi, max(count) AS n, count() AS series, "
        f"uniqExact(run_id) AS runs FROM {SUMMARIES.name}{SUMMARIES.final} WHERE {where}"
    )
    if rollups:
        coverage = _coverage_sql(bound)
        sql += f" UNION ALL SELECT r, toInt64(0), covered, toUInt64(0), series, toUInt64(0) FROM ({coverage})"
    found = query(sql, bound)
    extent = found[found["r"] == 0].reset_index(drop=True)
    if not len(extent) or int(extent["runs"].iloc[0]) < runs:
        return None
    coverage = found[found["r"] != 0].rename(columns={"hi": "covered"}) if rollups else None
    return extent, coverage


def _rollups_where(bound: Mapping[str, Any]) -> str:
    where = "run_id IN {ids:Array(String)} AND metric = {name:String}"
    return where + (" AND rank = {rank:UInt32}" if "rank" in bound else "")


def _coverage_sql(bound: Mapping[str, Any]) -> str:
    """Per resolution: the last step every series' rollup covers, and how many series it has."""
    return (
        "SELECT r_ AS r, min(covered) AS covered, count() AS series FROM (SELECT resolution AS r_, "
        f"run_id, rank AS rank_, max(last_step) AS covered FROM {ROLLUPS.name}{ROLLUPS.final} "
        f"WHERE {_rollups_where(bound)} GROUP BY r_, run_id, rank_) GROUP BY r ORDER BY r DESC"
    )


def _rollup_plan(
    coverage: pd.DataFrame,
    where: str,
    bound: dict[str, Any],
    bucket: int,
    n: int,
    span: tuple[int, int],
    series: int,
    extent: str,
) -> Plan | None:
    """Use the coarsest resolution that divides ``bucket`` and covers every series asked for."""
    coverage = coverage.sort_values("r", ascending=False)
    for r, covered, rolled in zip(coverage["r"], coverage["covered"], coverage["series"], strict=True):
        # A series without rollup rows (a processor not there yet) would lose its points: downsample instead.
        if 1 < int(r) <= bucket and bucket % int(r) == 0 and int(rolled) >= series:
            if int(covered) >= span[1]:
                until, tail = int(covered), False  # the rollup holds every point seen: no raw tail to read
            else:
                until, tail = (int(covered) + 1) // bucket * bucket - 1, True  # end of its last full bucket
            res = Resolution("rollup", bucket, ROLLUPS.name, n, span, rollup_resolution=int(r), extent=extent)
            return Plan(res, where, {**bound, "b": bucket, "r": int(r), "until": until}, until, raw_tail=tail)
    return None


def read_series(query: Query, plan: Plan) -> pd.DataFrame:
    """Run the plan: one row per point or bucket, ordered by run, rank and step."""
    res = plan.resolution
    if res.source == "raw":
        frame = query(
            "SELECT run_id, rank, step, value, value AS min, value AS max, toUInt64(1) AS count, "
            "toUInt64(NOT isFinite(value)) AS nonfinite, value AS last, ts "
            f"FROM metric_points WHERE {plan.where} ORDER BY run_id, rank, step",
            plan.bound,
        )
    elif res.source == "downsample":
        frame = query(_downsample_sql(plan.where) + " ORDER BY run_id, rank, step", plan.bound)
    else:
        frame = query(_rollup_sql(plan), plan.bound)
    frame = frame.reindex(columns=COLUMNS) if not frame.empty else pd.DataFrame(columns=COLUMNS)
    return frame.reset_index(drop=True)


def _downsample_sql(where: str) -> str:
    # Aggregates get names of their own inside: an alias equal to a column name (step, value)
    # would be taken for that column in WHERE/GROUP BY.
    return (
        "SELECT run_id, rank, s_ AS step, v_ AS value, lo_ AS min, hi_ AS max, n_ AS count, "
        "bad_ AS nonfinite, last_ AS last, ts_ AS ts FROM (SELECT run_id, rank, min(step) AS s_, "
        "avgIf(value, isFinite(value)) AS v_, minIf(value, isFinite(value)) AS lo_, "
        "maxIf(value, isFinite(value)) AS hi_, count() AS n_, countIf(NOT isFinite(value)) AS bad_, "
        "argMax(value, step) AS last_, max(ts) AS ts_ "
        f"FROM metric_points WHERE {where} GROUP BY run_id, rank, intDiv(step, {{b:Int64}}))"
    )


def _rollup_sql(plan: Plan) -> str:
    """Merge rollup rows into ``B``-step buckets up to ``until``; raw points after it (a lagging rollup).

    In a rollup row ``count`` includes NaN/inf and ``sum`` does not (``nonfinite`` counts them).
    """
    where = plan.where.replace("step >= {lo:Int64}", "last_step >= {lo:Int64}").replace(
        "step <= {hi:Int64}", "first_step <= {hi:Int64}"
    )
    rollup = (
        "SELECT run_id, rank_ AS rank, s_ AS step, if(n_ > bad_, sum_ / (n_ - bad_), nan) AS value, lo_ AS min, "
        "hi_ AS max, n_ AS count, bad_ AS nonfinite, last_ AS last, CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS ts "
        "FROM (SELECT run_id, rank AS rank_, min(first_step) AS s_, sum(sum) AS sum_, sum(count) AS n_, "
        "sum(nonfinite) AS bad_, min(min) AS lo_, max(max) AS hi_, argMax(last, last_step) AS last_ "
        f"FROM {ROLLUPS.name}{ROLLUPS.final} WHERE {where} AND resolution = {{r:UInt32}} "
        "AND last_step <= {until:Int64} GROUP BY run_id, rank_, intDiv(bucket * {r:Int64}, {b:Int64}))"
    )
    if not plan.raw_tail:
        return rollup + " ORDER BY run_id, rank, step"
    raw = _downsample_sql(plan.where + " AND step > {until:Int64}")
    return (
        "SELECT run_id, rank, step, value, min, max, count, nonfinite, last, ts FROM "
        f"({rollup} UNION ALL SELECT run_id, rank, step, value, min, max, count, nonfinite, last, "
        f"CAST(ts AS Nullable(DateTime64(3, 'UTC'))) AS ts FROM ({raw})) ORDER BY run_id, rank, step"
    )
