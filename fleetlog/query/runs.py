"""Runs and experiments: one row per run with its params, tags and metric summaries.

The metric columns come from :func:`summaries`, which reads the summaries the stream
processors keep (``metric_summaries``) for the runs they cover and aggregates raw
points for the others.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from fleetlog.config import Settings
from fleetlog.errors import RunNotFound
from fleetlog.events import RunStatus
from fleetlog.query.client import df, rows, tables_present
from fleetlog.query.sql import as_list, key_value_filter, typed
from fleetlog.store.schema_tables import spec

__all__ = ["RUN_COLUMNS", "TERMINAL", "compare", "experiments", "key_values", "run", "runs", "summaries"]

RUN_COLUMNS = (
    "run_id",
    "name",
    "project",
    "experiment",
    "status",
    "start_time",
    "end_time",
    "parent_run_id",
    "host",
    "world_size",
    "error_type",
    "error_message",
)
TERMINAL = tuple(sorted(RunStatus.TERMINAL))  # statuses a run ends in by its own hand


def key_values(settings: Settings | None, run_ids: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
    """Params and tags of the runs in one round trip: (``params.``/``tags.``, run_id, key, value, type) rows."""
    return rows(
        settings,
        "SELECT 'params.' AS kind, run_id, key, value, value_type FROM run_params FINAL "
        "WHERE run_id IN {ids:Array(String)} UNION ALL SELECT 'tags.' AS kind, run_id, key, value, value_type "
        "FROM run_tags FINAL WHERE run_id IN {ids:Array(String)}",
        {"ids": list(run_ids)},
    )


def _with_key_values(frame: pd.DataFrame, settings: Settings | None) -> pd.DataFrame:
    """One typed column per param and tag (``params.<key>``, ``tags.<key>``), None where a run lacks it."""
    if frame.empty:
        return frame
    row = {run_id: i for i, run_id in enumerate(frame["run_id"])}
    wide: dict[str, list[Any]] = {}
    for kind, run_id, key, value, value_type in key_values(settings, frame["run_id"].tolist()):
        wide.setdefault(kind + key, [None] * len(frame))[row[run_id]] = typed(value, value_type)
    if not wide:
        return frame
    extra = pd.DataFrame({k: wide[k] for k in sorted(wide)}, index=frame.index, dtype=object).infer_objects()
    return pd.concat([frame, extra], axis=1)


def runs(
    experiment: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    tags: Mapping[str, Any] | Iterable[str] | None = None,
    params: Mapping[str, Any] | None = None,
    where: str | None = None,
    *,
    project: str | None = None,
    metrics: Iterable[str] = (),
    order_by: str = "-start_time",
    limit: int | None = 100,
    parameters: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """One row per run: status, times, ``params.<key>``, ``tags.<key>`` and ``<metric>.last/min/max``.

    ``experiment``/``status`` take a value or a list; ``params={"opt.lr": 0.1}`` and
    ``tags={"suite": "e2e"}`` match values (a list matches any of them, ``None`` only the key);
    ``where`` is a SQL condition on the ``runs`` columns, its values bound from ``parameters``.
    ``order_by`` names any result column, ``-`` first for descending. The metric columns
    come from :func:`summaries` (the processors' summaries where they are kept).
    """
    bound: dict[str, Any] = dict(parameters or {})
    clauses = ["1"]
    for column, value in (("experiment", experiment), ("status", status), ("project", project)):
        values = as_list(value)
        if values is not None:
            bound[f"_{column}"] = values
            clauses.append(f"{column} IN {{_{column}:Array(String)}}")
    if tags is not None:
        tag_map = tags if isinstance(tags, Mapping) else dict.fromkeys(as_list(tags) or [])
        clauses += key_value_filter("run_tags", tag_map, "_t", bound)
    if params:
        clauses += key_value_filter("run_params", params, "_p", bound)
    if where:
        clauses.append(f"({where})")
    descending = order_by.startswith("-")
    order_column = order_by.lstrip("-+")
    in_sql = order_column in RUN_COLUMNS or order_column == "duration_seconds"
    order = f"ORDER BY {order_column} {'DESC' if descending else 'ASC'}, run_id" if in_sql else "ORDER BY run_id"
    tail = f" LIMIT {int(limit)}" if limit is not None and in_sql else ""
    frame = df(
        settings,
        f"SELECT {', '.join(RUN_COLUMNS)}, "
        "dateDiff('millisecond', start_time, ifNull(end_time, now64(3))) / 1000 AS duration_seconds "
        f"FROM runs FINAL WHERE {' AND '.join(clauses)} {order}{tail}",
        bound,
    )
    frame = _with_key_values(frame, settings)
    frame = _with_metrics(frame, list(metrics), settings)
    if not in_sql:
        if order_column not in frame.columns:
            raise ValueError(f"cannot order by {order_column!r}: not a column of the result ({list(frame.columns)})")
        frame = frame.sort_values(order_column, ascending=not descending, kind="stable", na_position="last")
        frame = frame.head(limit) if limit is not None else frame
    return frame.reset_index(drop=True)


def _with_metrics(frame: pd.DataFrame, metrics: list[str], settings: Settings | None) -> pd.DataFrame:
    """``<metric>.last/min/max`` columns, looked up from the summaries (no merge per metric)."""
    if frame.empty or not metrics:
        return frame
    summary = summaries(frame["run_id"].tolist(), metrics, settings=settings)
    found = dict(
        zip(
            zip(summary["run_id"], summary["metric"], strict=True),
            zip(summary["last"], summary["min"], summary["max"], strict=True),
            strict=True,
        )
    )
    nan = (math.nan,) * 3
    extra = {
        f"{name}.{column}": [found.get((run_id, name), nan)[i] for run_id in frame["run_id"]]
        for name in metrics
        for i, column in enumerate(("last", "min", "max"))
    }
    return pd.concat([frame, pd.DataFrame(extra, index=frame.index, dtype=float)], axis=1)


def run(run_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One run's record with its ``params`` and ``tags`` as dicts; ``RunNotFound`` if absent."""
    frame = df(
        settings,
        f"SELECT {', '.join(RUN_COLUMNS)}, error_traceback, rank, pid FROM runs FINAL WHERE run_id = {{r:String}}",
        {"r": run_id},
    )
    if frame.empty:
        raise RunNotFound(f"no run {run_id!r} in the store; `fleetlog runs` lists the runs there")
    record = {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}
    record["params"], record["tags"] = {}, {}
    for kind, _, key, value, value_type in key_values(settings, [run_id]):
        record[kind.rstrip(".")][key] = typed(value, value_type)
    return record


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def experiments(*, settings: Settings | None = None) -> pd.DataFrame:
    """Each experiment with its run count, runs by status and latest start."""
    return df(
        settings,
        "SELECT project, experiment, count() AS runs, countIf(status = 'Running') AS running, "
        "countIf(status = 'Completed') AS completed, countIf(status = 'Failed') AS failed, "
        "max(start_time) AS last_start FROM runs FINAL GROUP BY project, experiment ORDER BY last_start DESC",
    )


_RAW_SUMMARY = (
    "SELECT run_id, metric, count() AS count, argMax(value, (step, ts)) AS last, "
    "if(count > nonfinite, minIf(value, isFinite(value)), nan) AS min, "
    "if(count > nonfinite, maxIf(value, isFinite(value)), nan) AS max, "
    "countIf(NOT isFinite(value)) AS nonfinite, max(step) AS last_step, max(ts) AS last_ts, uniqExact(rank) AS ranks "
    "FROM metric_points WHERE run_id IN {{ids:Array(String)}}{cond} GROUP BY run_id, metric ORDER BY run_id, metric"
)
# The processors' per-rank summaries, merged across ranks the way _RAW_SUMMARY aggregates points.
_SUMMARIES = spec("metric_summaries")
_KEPT_SUMMARY = (
    "SELECT run_id, metric, n_ AS count, last_ AS last, if(n_ > bad_, lo_, nan) AS min, "
    "if(n_ > bad_, hi_, nan) AS max, bad_ AS nonfinite, step_ AS last_step, ts_ AS last_ts, ranks_ AS ranks "
    "FROM (SELECT run_id, metric, "
    "sum(count) AS n_, argMax(last, (last_step, last_ts)) AS last_, minIf(min, isFinite(min)) AS lo_, "
    "maxIf(max, isFinite(max)) AS hi_, sum(nonfinite) AS bad_, max(last_step) AS step_, max(last_ts) AS ts_, "
    f"count() AS ranks_ FROM {_SUMMARIES.name}{_SUMMARIES.final} WHERE run_id IN {{{{ids:Array(String)}}}}{{cond}} "
    "GROUP BY run_id, metric) ORDER BY run_id, metric"
)


def summaries(
    run_ids: str | Sequence[str],
    metrics: Iterable[str] | None = None,
    *,
    source: str = "auto",
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Per run and metric: points, last value (at the highest step), min, max, last step and time.

    NaN and infinities are left out of min/max (NaN when nothing was finite) and counted in
    ``nonfinite``. ``source="auto"`` reads the summaries the stream processors keep, a second
    or two behind the raw points and cheap however long the series, for the runs they cover,
    and aggregates raw points for the others (a store without processors); ``"raw"``
    aggregates raw points for every run: exact as of now, and slower on long series.
    """
    if source not in ("auto", "raw"):
        raise ValueError(f"source must be 'auto' or 'raw', not {source!r}")
    ids = as_list(run_ids) or []
    names = as_list(metrics)
    bound: dict[str, Any] = {"ids": ids}
    cond = ""
    if names is not None:
        bound["names"] = names
        cond = " AND metric IN {names:Array(String)}"
    parts, todo = [], ids
    if source == "auto" and ids and _SUMMARIES.name in tables_present(settings):
        kept = df(settings, _KEPT_SUMMARY.format(cond=cond), bound)
        # A run the processors have not summarised (or not every metric asked for) is read raw.
        have = Counter(kept["run_id"])  # one row per (run, metric)
        todo = [i for i in ids if have[i] < (len(set(names)) if names is not None else 1)]
        kept = kept[~kept["run_id"].isin(todo)] if todo and not kept.empty else kept
        parts.append(kept)
    if todo:
        parts.append(df(settings, _RAW_SUMMARY.format(cond=cond), {**bound, "ids": todo}))
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat([p for p in parts if not p.empty] or parts[:1])
    return frame.sort_values(["run_id", "metric"], kind="stable").reset_index(drop=True)


def compare(
    run_ids: Sequence[str],
    metrics: Iterable[str],
    *,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Runs side by side: status, the params whose values differ, and each metric's last/min/max."""
    ids = list(run_ids)
    frame = runs(
        where="run_id IN {_ids:Array(String)}",
        parameters={"_ids": ids},
        metrics=list(metrics),
        limit=None,
        settings=settings,
    )
    if frame.empty:
        raise RunNotFound(f"none of {ids!r} is in the store")
    missing = sorted(set(ids) - set(frame["run_id"]))
    if missing:
        raise RunNotFound(f"no run {missing[0]!r} in the store; `fleetlog runs` lists the runs there")
    frame = frame.set_index("run_id").loc[ids].reset_index()
    same = [c for c in frame.columns if c.startswith("params.") and frame[c].astype(str).nunique(dropna=False) <= 1]
    keep = ["run_id", "name", "status", "duration_seconds"]
    return frame[keep + [c for c in frame.columns if c not in keep and c not in same and _compared(c)]]


def _compared(column: str) -> bool:
    return column.startswith("params.") or column.endswith((".last", ".min", ".max"))
