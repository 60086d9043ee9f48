"""What a run logged besides metric points: log lines, tables, artifacts and images, and alerts.

Each kind has its table in the schema (``run_logs``, ``run_records``, ``run_artifacts``,
``alerts``).  A store may not have one yet (a server on an older schema, or the
processors' ``alerts`` before any processor ran): the reader then returns an empty
frame with ``attrs["available"] = False`` instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from fleetlog.config import Settings
from fleetlog.errors import RunNotFound
from fleetlog.query.client import df, reading, tables_present
from fleetlog.query.sql import as_list
from fleetlog.store.schema_tables import spec

__all__ = ["alerts", "artifact", "artifacts", "images", "logs", "tables"]


def _records(
    table_name: str,
    run_id: str | None,
    *,
    settings: Settings | None,
    limit: int | None,
    since: Any = None,
    filters: Mapping[str, Any] | None = None,
    newest_first: bool = False,
) -> pd.DataFrame:
    """Rows of ``table_name`` for a run (or all runs), oldest first; the newest ``limit`` if ``newest_first``."""
    table = spec(table_name)
    if table.name not in tables_present(settings):
        empty = pd.DataFrame()
        empty.attrs["available"] = False
        return empty
    bound: dict[str, Any] = {}
    clauses = ["1"]
    if run_id is not None and "run_id" in table.columns:
        bound["_run"] = run_id
        clauses.append("run_id = {_run:String}")
    time_col = table.time_column
    if since is not None and time_col:
        bound["_since"] = pd.Timestamp(since, tz="UTC") if not isinstance(since, pd.Timestamp) else since
        clauses.append(f"{time_col} > {{_since:DateTime64(6)}}")
    for i, (column, value) in enumerate((filters or {}).items()):
        if value is None:
            continue
        if column not in table.columns:
            raise ValueError(f"{table.name} has no column {column!r} to filter on; it has {list(table.columns)}")
        bound[f"_f{i}"] = as_list(value)
        clauses.append(f"toString({column}) IN {{_f{i}:Array(String)}}")
    order = f" ORDER BY {time_col} {'DESC' if newest_first else 'ASC'}" if time_col else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    frame = df(settings, f"SELECT * FROM {table.name}{table.final} WHERE {' AND '.join(clauses)}{order}{tail}", bound)
    if newest_first and time_col:
        frame = frame.iloc[::-1].reset_index(drop=True)
    frame.attrs["available"] = True
    frame.attrs["table"] = table.name
    return frame


def logs(
    run_id: str,
    *,
    stream: str | Iterable[str] | None = None,
    level: str | Iterable[str] | None = None,
    since: Any = None,
    limit: int | None = 1000,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """A run's captured log lines (stdout, stderr, Python logging), oldest first; the newest ``limit``."""
    return _records(
        "run_logs",
        run_id,
        settings=settings,
        limit=limit,
        since=since,
        filters={"stream": stream, "level": level},
        newest_first=True,
    )


def alerts(
    run_id: str | None = None,
    *,
    since: Any = None,
    limit: int | None = 1000,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Alerts the stream processors raised (for one run, or all), oldest first."""
    return _records("alerts", run_id, settings=settings, limit=limit, since=since, newest_first=True)


def tables(run_id: str, name: str | None = None, *, settings: Settings | None = None) -> pd.DataFrame:
    """The lists, rows and tables a run logged: without ``name`` one line per record name
    (``name, type, description, records, last_ts``); with it, that record's content as a frame.

    A table is its columns; rows logged one by one become one row each; a list is one
    column; Azure ML's structured payloads (confusion matrix...) become one ``data`` cell.
    """
    recs = _records("run_records", run_id, settings=settings, limit=None, filters={"name": name} if name else None)
    if recs.empty:
        return recs
    if name is None:
        out = (
            recs.groupby(["name", "type"], sort=True)
            .agg(description=("description", "last"), records=("idx", "size"), last_ts=("ts", "max"))
            .reset_index()
        )
        out.attrs.update(recs.attrs)
        return out
    recs = recs.sort_values("idx")
    kind, payloads = recs["type"].iloc[-1], [json.loads(d) for d in recs["data"]]
    if kind == "table":
        return pd.DataFrame(payloads[-1])
    if kind == "row":
        return pd.DataFrame(payloads)
    if kind == "list":
        return pd.DataFrame({name: payloads[-1]})
    if kind == "metric":  # a string metric: each value logged, oldest first
        return pd.DataFrame({name: payloads})
    return pd.DataFrame({"data": payloads[-1:]})


def artifacts(run_id: str, kind: str | None = None, *, settings: Settings | None = None) -> pd.DataFrame:
    """Metadata of the files and images a run uploaded: name, kind, size, sha256, uri, content type.

    ``inline`` (the bytes of small images) is left out; the dashboard serves it.
    """
    frame = _records("run_artifacts", run_id, settings=settings, limit=None, filters={"kind": kind})
    return frame.drop(columns=["inline"], errors="ignore")


def artifact(run_id: str, name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One artifact's record, with ``inline`` as bytes (empty unless a small image travelled inline)."""
    settings = settings or Settings.from_env()
    table = spec("run_artifacts")
    if table.name not in tables_present(settings):
        raise RunNotFound(f"no artifact {name!r} in run {run_id!r}: this store keeps no artifacts")
    with reading(settings) as reader:
        result = reader.query(
            f"SELECT name, kind, uri, content_type, size, inline FROM {table.name}{table.final} "
            "WHERE run_id = {r:String} AND name = {n:String}",
            parameters={"r": run_id, "n": name},
            column_formats={"inline": "bytes"},
        )
    if not result.result_rows:
        raise RunNotFound(f"no artifact {name!r} in run {run_id!r}")
    return dict(zip(result.column_names, result.result_rows[0], strict=True))


def images(run_id: str, *, settings: Settings | None = None) -> pd.DataFrame:
    """Metadata of the images a run logged (``artifacts(run_id, "image")``)."""
    return artifacts(run_id, "image", settings=settings)
