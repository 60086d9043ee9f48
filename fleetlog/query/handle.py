"""What a ``fleetlog.Run`` / ``Experiment`` handle reads back, in Azure ML's shapes.

The handle (:mod:`fleetlog.runs`) adds read-your-writes on top; the reading itself is
here, beside the other readers, so there is one read side.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from fleetlog.config import Settings, mask_url
from fleetlog.errors import RunNotFound
from fleetlog.query.client import df, reader_url
from fleetlog.query.sql import typed

__all__ = [
    "KEY_VALUE_TABLES",
    "artifact_uri",
    "child_ids",
    "experiment_run_ids",
    "file_names",
    "key_values",
    "last_steps",
    "run_metrics",
    "run_record",
]

KEY_VALUE_TABLES = frozenset({"run_tags", "run_params", "run_properties"})


def run_record(run_id: str, settings: Settings, *, missing: str = "") -> dict[str, Any]:
    """The run's ``runs`` row; ``RunNotFound`` (with ``missing`` as the hint) when the store has none."""
    frame = df(settings, "SELECT * FROM runs FINAL WHERE run_id = {r:String}", {"r": run_id})
    if frame.empty:
        raise RunNotFound(missing or f"no run {run_id!r} in the store at {mask_url(reader_url(settings))}")
    return frame.iloc[0].to_dict()


def key_values(run_id: str, table: str, settings: Settings) -> dict[str, Any]:
    """A run's tags, params or properties (``table``), typed as logged; deleted keys left out."""
    if table not in KEY_VALUE_TABLES:
        raise ValueError(f"table must be one of {sorted(KEY_VALUE_TABLES)}, not {table!r}")
    frame = df(settings, f"SELECT key, value, value_type FROM {table} FINAL WHERE run_id = {{r:String}}", {"r": run_id})
    return {k: typed(v, t) for k, v, t in frame.itertuples(index=False) if t != "deleted"}


def run_metrics(run_id: str, settings: Settings, *, name: str | None = None, rank: int = 0) -> dict[str, Any]:
    """Azure's ``get_metrics`` shape: name -> value (one point), list (a series), dict of columns (a table)."""
    bound = {"r": run_id, "k": rank, "n": name or ""}
    out: dict[str, Any] = {}
    points = df(
        settings,
        "SELECT metric, arrayMap(x -> x.2, arraySort(groupArray((step, value)))) AS v "
        "FROM metric_points WHERE run_id = {r:String} AND rank = {k:UInt32} "
        "AND ({n:String} = '' OR metric = {n:String}) GROUP BY metric",
        bound,
    )
    for metric, values in points.itertuples(index=False):
        values = [float(v) for v in values]
        out[metric] = values[0] if len(values) == 1 else values
    records = df(
        settings,
        "SELECT name, type, data FROM run_records WHERE run_id = {r:String} "
        "AND ({n:String} = '' OR name = {n:String}) ORDER BY name, idx",
        bound,
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for rec_name, kind, data in records.itertuples(index=False):
        value = json.loads(data)
        if kind == "row":
            rows.setdefault(rec_name, []).append(value)
        else:
            out[rec_name] = value
    for rec_name, row_list in rows.items():
        columns = list(dict.fromkeys(c for row in row_list for c in row))
        out[rec_name] = {c: [row.get(c) for row in row_list] for c in columns}
    images = df(
        settings,
        "SELECT name, groupArray(uri) FROM run_artifacts FINAL WHERE run_id = {r:String} "
        "AND kind = 'image' AND ({n:String} = '' OR name = {n:String}) GROUP BY name",
        bound,
    )
    for img, uris in images.itertuples(index=False):
        out[img] = uris[0] if len(uris) == 1 else list(uris)
    return out


def file_names(run_id: str, settings: Settings) -> list[str]:
    """The files (not images) a run uploaded, by name."""
    frame = df(
        settings,
        "SELECT name FROM run_artifacts FINAL WHERE run_id = {r:String} AND kind = 'file' ORDER BY name",
        {"r": run_id},
    )
    return list(frame.get("name", []))


def artifact_uri(run_id: str, name: str, settings: Settings) -> str | None:
    """Where the run's artifact ``name`` is kept, or None if the run has none such."""
    frame = df(
        settings,
        "SELECT uri FROM run_artifacts FINAL WHERE run_id = {r:String} AND name = {n:String}",
        {"r": run_id, "n": name},
    )
    return None if frame.empty else str(frame["uri"].iloc[0])


def child_ids(run_id: str, settings: Settings) -> list[str]:
    """The run's children, oldest first."""
    frame = df(
        settings,
        "SELECT run_id FROM runs FINAL WHERE parent_run_id = {r:String} ORDER BY start_time",
        {"r": run_id},
    )
    return list(frame.get("run_id", []))


def experiment_run_ids(experiment: str, project: str, settings: Settings) -> list[str]:
    """An experiment's runs, newest first."""
    frame = df(
        settings,
        "SELECT run_id FROM runs FINAL WHERE experiment = {e:String} AND project = {p:String} ORDER BY start_time DESC",
        {"e": experiment, "p": project},
    )
    return list(frame.get("run_id", []))


def last_steps(run_id: str, rank: int, settings: Settings) -> tuple[pd.Timestamp, dict[str, int]] | None:
    """For resuming a run: its start time and each metric's last step on ``rank``; None if the store has no run."""
    start = df(settings, "SELECT start_time FROM runs FINAL WHERE run_id = {r:String}", {"r": run_id})
    if start.empty:
        return None
    steps = df(
        settings,
        "SELECT metric, max(step) AS last FROM metric_points "
        "WHERE run_id = {r:String} AND rank = {k:UInt32} GROUP BY metric",
        {"r": run_id, "k": rank},
    )
    return start["start_time"].iloc[0], dict(zip(steps["metric"], steps["last"].astype(int), strict=True))
