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
    "SYSTEM_PREFIX",
    "artifact_uri",
    "child_ids",
    "experiment_run_ids",
    "file_names",
    "key_values",
    "last_steps",
    "latest_text_metrics",
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


SYSTEM_PREFIX = "sys/"


def run_metrics(
    run_id: str, settings: Settings, *, name: str | None = None, rank: int = 0, include_system: bool = False
) -> dict[str, Any]:
    """Azure's ``get_metrics`` shape: name -> value (one point), list (a series), dict of columns (a table).

    String metrics (``run.log('Category', 'Red')``) come back as strings.  fleetlog's own
    telemetry (``sys/...``) is left out unless ``include_system``: what the script logged,
    as on Azure.
    """
    out = _run_metrics(run_id, settings, name=name, rank=rank)
    if include_system or (name or "").startswith(SYSTEM_PREFIX):
        return out
    return {k: v for k, v in out.items() if not k.startswith(SYSTEM_PREFIX)}


def _run_metrics(run_id: str, settings: Settings, *, name: str | None, rank: int) -> dict[str, Any]:
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
    texts: dict[str, list[Any]] = {}
    for rec_name, kind, data in records.itertuples(index=False):
        value = json.loads(data)
        if kind == "row":
            rows.setdefault(rec_name, []).append(value)
        elif kind == "metric":
            texts.setdefault(rec_name, []).append(value)
        else:
            out[rec_name] = value
    for rec_name, values in texts.items():
        out[rec_name] = values[0] if len(values) == 1 else values
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


def latest_text_metrics(run_ids: list[str], settings: Settings) -> dict[str, dict[str, Any]]:
    """Per run, each string metric's last value (``run.log('Category', 'Red')``): the runs table shows them."""
    if not run_ids:
        return {}
    frame = df(
        settings,
        "SELECT run_id, name, argMax(data, idx) AS data FROM run_records "
        "WHERE run_id IN {ids:Array(String)} AND type = 'metric' GROUP BY run_id, name ORDER BY run_id, name",
        {"ids": run_ids},
    )
    out: dict[str, dict[str, Any]] = {}
    for run_id, name, data in frame.itertuples(index=False):
        out.setdefault(run_id, {})[name] = json.loads(data)
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


def last_steps(run_id: str, rank: int, settings: Settings) -> tuple[pd.Timestamp | None, dict[str, int]] | None:
    """For resuming a run: its start time and each metric's last step on ``rank``; None if the store has neither.

    The run's row travels on the events topic and can land a flush after its points: steps found
    without it still count (a resume must never restart steps the store already has), start unknown.
    """
    start = df(settings, "SELECT start_time FROM runs FINAL WHERE run_id = {r:String}", {"r": run_id})
    steps = df(
        settings,
        "SELECT metric, max(step) AS last FROM metric_points "
        "WHERE run_id = {r:String} AND rank = {k:UInt32} GROUP BY metric",
        {"r": run_id, "k": rank},
    )
    if start.empty and steps.empty:
        return None
    started = None if start.empty else start["start_time"].iloc[0]
    return started, dict(zip(steps["metric"], steps["last"].astype(int), strict=True))
