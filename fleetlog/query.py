"""Reading back: runs, metric series, logs and more, returned as pandas DataFrames.

Every read goes through clickhouse-connect's HTTP client, so the same code reads
the embedded store (through the endpoint its owning process serves) and a
ClickHouse server.  Values are bound server-side (``{name:Type}`` placeholders);
nothing a user passes is ever pasted into SQL text: column names chosen by a
caller (``order_by``) are checked against the columns that exist.

Tables filled by stream processors (rollups, summaries, alerts) and by the SDK's
richer record kinds (logs, tables, images) are used when the store has them and
skipped when it does not (see :mod:`fleetlog._catalog`); ``metric`` then
downsamples raw points on the server and says so in ``df.attrs["resolution"]``.

    import fleetlog.query as q
    q.runs(experiment="mnist", params={"opt.lr": 0.1}, metrics=["loss"])
    q.metric(["run-a", "run-b"], "loss")            # ~1,500 points per series, min/max envelope
    q.sql("SELECT count() FROM metric_points WHERE run_id = {r:String}", {"r": "run-a"})
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from fleetlog._catalog import Catalog, catalog
from fleetlog._series import Resolution, plan_resolution, read_series
from fleetlog.config import Settings, mask_url
from fleetlog.credentials import store_url
from fleetlog.errors import RunNotFound, StoreUnavailable

__all__ = [
    "Resolution",
    "alerts",
    "artifact",
    "artifacts",
    "client",
    "compare",
    "experiments",
    "fleet",
    "images",
    "logs",
    "metric",
    "metric_names",
    "points_stream",
    "reader_url",
    "run",
    "runs",
    "sql",
    "summaries",
    "tables",
]

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
TERMINAL = ("Completed", "Failed", "Canceled")


def reader_url(settings: Settings) -> str:
    """Where readers connect: the embedded store's endpoint as its read-only reader, or the server itself.

    The URL carries the reader's password: pass it through ``mask_url`` before showing it.
    """
    return store_url(settings, "reader")


@functools.lru_cache(maxsize=8)
def _client(url: str) -> Client:
    from fleetlog.store.client import connect

    reader = connect(url)
    # Readers keep no server-side state; without a session id one client serves many threads at once
    # (the dashboard's), where a shared session would refuse concurrent queries.
    reader.params.pop("session_id", None)
    return reader


def client(settings: Settings | None = None) -> Client:
    """A cached clickhouse-connect client for the configured store."""
    return _client(reader_url(settings or Settings.from_env()))


def _unavailable(settings: Settings, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"cannot reach ClickHouse at {mask_url(reader_url(settings))}: {exc}. "
        "Start the local stack with `fleetlog up`, or set FLEETLOG_CLICKHOUSE."
    )


def _df(settings: Settings | None, query: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    settings = settings or Settings.from_env()
    bound = dict(parameters or {})
    try:
        frame = client(settings).query_df(query, parameters=bound)
        if frame.empty and not len(frame.columns):
            # An empty result can come back without its header; ask for the column names.
            names = client(settings).query(f"DESCRIBE ({query})", parameters=bound).result_columns[0]
            frame = pd.DataFrame(columns=list(names))
        return frame
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None


def _rows(settings: Settings | None, query: str, parameters: Mapping[str, Any] | None = None) -> list[Any]:
    """A small result as Python rows: no DataFrame built for what is folded into one."""
    settings = settings or Settings.from_env()
    try:
        return client(settings).query(query, parameters=dict(parameters or {})).result_rows
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None


def _catalog(settings: Settings | None) -> Catalog:
    settings = settings or Settings.from_env()
    try:
        return catalog(client(settings), reader_url(settings))
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None


def sql(
    query: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    output: str = "pandas",
    settings: Settings | None = None,
) -> Any:
    """Run a query; bind values with ``{name:Type}`` placeholders (bound server-side, never pasted).

    ``sql("SELECT * FROM runs FINAL WHERE experiment = {e:String}", {"e": "mnist"})`` returns a
    pandas DataFrame; ``output="arrow"`` a ``pyarrow.Table``, ``output="polars"`` a polars
    DataFrame (``pip install polars``).
    """
    if output == "pandas":
        return _df(settings, query, parameters)
    if output not in ("arrow", "polars"):
        raise ValueError(f"output must be 'pandas', 'arrow' or 'polars', not {output!r}")
    settings = settings or Settings.from_env()
    try:
        table = client(settings).query_arrow(query, parameters=dict(parameters or {}), use_strings=True)
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None
    if output == "arrow":
        return table
    try:
        import polars
    except ImportError:
        raise ImportError("output='polars' needs polars: pip install polars") from None
    return polars.from_arrow(table)


def points_stream(
    run_id: str, metrics: Iterable[str] | None = None, *, settings: Settings | None = None
) -> Iterator[Any]:
    """Every raw point of a run as Arrow record batches (``metric, rank, step, ts, value``), streamed."""
    settings = settings or Settings.from_env()
    bound: dict[str, Any] = {"r": run_id}
    cond = ""
    if metrics is not None:
        bound["names"] = list(metrics)
        cond = " AND metric IN {names:Array(String)}"
    query = (
        "SELECT toString(metric) AS metric, rank, step, ts, value FROM metric_points "
        f"WHERE run_id = {{r:String}}{cond} ORDER BY metric, rank, step"
    )
    try:
        with client(settings).query_arrow_stream(query, parameters=bound, use_strings=True) as stream:
            yield from stream
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None


# -- runs ----------------------------------------------------------------------------------------


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _param_text(value: Any) -> str:
    """A filter value as the sink stores it: ``str(value)``, booleans lower-case."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _key_value_filter(table: str, items: Mapping[str, Any], prefix: str, params: dict[str, Any]) -> list[str]:
    """``run_id IN (...)`` clauses for params/tags filters; a ``None`` value only asks that the key exist."""
    clauses = []
    for i, (key, value) in enumerate(items.items()):
        params[f"{prefix}k{i}"] = str(key)
        cond = f"key = {{{prefix}k{i}:String}}"
        if value is not None:
            params[f"{prefix}v{i}"] = [_param_text(v) for v in value] if isinstance(value, (list, tuple)) else None
            if params[f"{prefix}v{i}"] is None:
                params[f"{prefix}v{i}"] = _param_text(value)
                cond += f" AND value = {{{prefix}v{i}:String}}"
            else:
                cond += f" AND value IN {{{prefix}v{i}:Array(String)}}"
        clauses.append(f"run_id IN (SELECT run_id FROM {table} FINAL WHERE {cond})")
    return clauses


def _typed(value: str, kind: str) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        return value
    if kind == "bool":
        return value == "true"
    if kind == "null":
        return None
    return value


def _key_values(settings: Settings | None, run_ids: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
    """Params and tags of the runs in one round trip: (``params.``/``tags.``, run_id, key, value, type) rows."""
    return _rows(
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
    kv = _key_values(settings, frame["run_id"].tolist())
    row = {run_id: i for i, run_id in enumerate(frame["run_id"])}
    wide: dict[str, list[Any]] = {}
    for kind, run_id, key, value, value_type in kv:
        wide.setdefault(kind + key, [None] * len(frame))[row[run_id]] = _typed(value, value_type)
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
        values = _as_list(value)
        if values is not None:
            bound[f"_{column}"] = values
            clauses.append(f"{column} IN {{_{column}:Array(String)}}")
    if tags is not None:
        tag_map = tags if isinstance(tags, Mapping) else dict.fromkeys(_as_list(tags) or [])
        clauses += _key_value_filter("run_tags", tag_map, "_t", bound)
    if params:
        clauses += _key_value_filter("run_params", params, "_p", bound)
    if where:
        clauses.append(f"({where})")
    descending = order_by.startswith("-")
    order_column = order_by.lstrip("-+")
    in_sql = order_column in RUN_COLUMNS or order_column == "duration_seconds"
    order = f"ORDER BY {order_column} {'DESC' if descending else 'ASC'}, run_id" if in_sql else "ORDER BY run_id"
    tail = f" LIMIT {int(limit)}" if limit is not None and in_sql else ""
    frame = _df(
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
    frame = _df(
        settings,
        f"SELECT {', '.join(RUN_COLUMNS)}, error_traceback, rank, pid FROM runs FINAL WHERE run_id = {{r:String}}",
        {"r": run_id},
    )
    if frame.empty:
        raise RunNotFound(f"no run {run_id!r} in the store; `fleetlog runs` lists the runs there")
    record = {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}
    record["params"], record["tags"] = {}, {}
    for kind, _, key, value, value_type in _key_values(settings, [run_id]):
        record[kind.rstrip(".")][key] = _typed(value, value_type)
    return record


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def experiments(*, settings: Settings | None = None) -> pd.DataFrame:
    """Each experiment with its run count, runs by status and latest start."""
    return _df(
        settings,
        "SELECT project, experiment, count() AS runs, countIf(status = 'Running') AS running, "
        "countIf(status = 'Completed') AS completed, countIf(status = 'Failed') AS failed, "
        "max(start_time) AS last_start FROM runs FINAL GROUP BY project, experiment ORDER BY last_start DESC",
    )


# -- metrics -------------------------------------------------------------------------------------


_RAW_SUMMARY = (
    "SELECT run_id, metric, count() AS count, argMax(value, (step, ts)) AS last, "
    "if(count > nonfinite, minIf(value, isFinite(value)), nan) AS min, "
    "if(count > nonfinite, maxIf(value, isFinite(value)), nan) AS max, "
    "countIf(NOT isFinite(value)) AS nonfinite, max(step) AS last_step, max(ts) AS last_ts, uniqExact(rank) AS ranks "
    "FROM metric_points WHERE run_id IN {{ids:Array(String)}}{cond} GROUP BY run_id, metric ORDER BY run_id, metric"
)
# The processors' per-rank summaries, merged across ranks the way _RAW_SUMMARY aggregates points.
_KEPT_SUMMARY = (
    "SELECT run_id, metric, n_ AS count, last_ AS last, if(n_ > bad_, lo_, nan) AS min, "
    "if(n_ > bad_, hi_, nan) AS max, bad_ AS nonfinite, step_ AS last_step, ts_ AS last_ts, ranks_ AS ranks "
    "FROM (SELECT run_id, metric, "
    "sum(count) AS n_, argMax(last, (last_step, last_ts)) AS last_, minIf(min, isFinite(min)) AS lo_, "
    "maxIf(max, isFinite(max)) AS hi_, sum(nonfinite) AS bad_, max(last_step) AS step_, max(last_ts) AS ts_, "
    "count() AS ranks_ FROM {table}{final} WHERE run_id IN {{ids:Array(String)}}{cond} GROUP BY run_id, metric) "
    "ORDER BY run_id, metric"
)
_KEPT_COLUMNS = frozenset(
    {"run_id", "metric", "rank", "count", "nonfinite", "min", "max", "last", "last_step", "last_ts"}
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
    ids = _as_list(run_ids) or []
    names = _as_list(metrics)
    bound: dict[str, Any] = {"ids": ids}
    cond = ""
    if names is not None:
        bound["names"] = names
        cond = " AND metric IN {names:Array(String)}"
    parts, todo = [], ids
    cat = _catalog(settings) if source == "auto" and ids else None
    table = cat.find("summaries") if cat is not None else None
    if cat is not None and table is not None and set(cat.columns(table)) >= _KEPT_COLUMNS:
        final = " FINAL" if cat.is_replacing(table) else ""
        kept = _df(settings, _KEPT_SUMMARY.format(table=table, final=final, cond=cond), bound)
        # A run the processors have not summarised (or not every metric asked for) is read raw.
        have = Counter(kept["run_id"])  # one row per (run, metric)
        todo = [i for i in ids if have[i] < (len(set(names)) if names is not None else 1)]
        kept = kept[~kept["run_id"].isin(todo)] if todo and not kept.empty else kept
        parts.append(kept)
    if todo:
        parts.append(_df(settings, _RAW_SUMMARY.format(cond=cond), {**bound, "ids": todo}))
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat([p for p in parts if not p.empty] or parts[:1])
    return frame.sort_values(["run_id", "metric"], kind="stable").reset_index(drop=True)


def metric_names(run_ids: str | Sequence[str], *, settings: Settings | None = None) -> list[str]:
    """The metric names the runs logged, sorted."""
    frame = _df(
        settings,
        "SELECT DISTINCT metric FROM metric_points WHERE run_id IN {ids:Array(String)} ORDER BY metric",
        {"ids": _as_list(run_ids)},
    )
    return frame["metric"].tolist()


def metric(
    run_ids: str | Sequence[str],
    name: str,
    *,
    resolution: str | int = "auto",
    step_range: tuple[int | None, int | None] | None = None,
    time_range: tuple[Any, Any] | None = None,
    points: int = 1500,
    rank: int | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """One metric's series for one or more runs: ``run_id, rank, step, value, min, max, count, ts``.

    ``resolution="auto"`` reads raw points when a series has at most ``points`` of them in
    the range, else buckets of steps sized for about ``points`` per series: from the
    coarsest rollup table that is fine enough, or downsampled on the server. ``"raw"``
    forces raw points; an int forces that bucket size in steps. In a bucket, ``value``
    is the mean, ``min``/``max`` the envelope, ``step`` the first step, ``last`` the
    value at the last step (NaN/inf are left out and counted in ``nonfinite``).
    ``df.attrs["resolution"]`` says which source and bucket were used.
    """
    settings = settings or Settings.from_env()
    ids = _as_list(run_ids) or []
    if not ids:
        raise ValueError("metric() needs at least one run id")
    plan = plan_resolution(
        functools.partial(_df, settings),
        _catalog(settings),
        ids,
        name,
        resolution=resolution,
        step_range=step_range,
        time_range=time_range,
        points=points,
        rank=rank,
    )
    frame = read_series(functools.partial(_df, settings), plan)
    frame.attrs["resolution"] = plan.resolution.as_dict()
    return frame


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


# -- the optional record kinds ------------------------------------------------------------------


def _records(
    kind: str,
    run_id: str | None,
    *,
    settings: Settings | None,
    limit: int | None,
    since: Any = None,
    filters: Mapping[str, Any] | None = None,
    newest_first: bool = False,
) -> pd.DataFrame:
    """Rows of an optional table for a run; empty (``attrs["available"] = False``) when it does not exist."""
    cat = _catalog(settings)
    table = cat.find(kind)
    if table is None:
        empty = pd.DataFrame()
        empty.attrs["available"] = False
        return empty
    bound: dict[str, Any] = {}
    clauses = ["1"]
    if run_id is not None and "run_id" in cat.columns(table):
        bound["_run"] = run_id
        clauses.append("run_id = {_run:String}")
    time_col = cat.time_column(table)
    if since is not None and time_col:
        bound["_since"] = pd.Timestamp(since, tz="UTC") if not isinstance(since, pd.Timestamp) else since
        clauses.append(f"{time_col} > {{_since:DateTime64(6)}}")
    for i, (column, value) in enumerate((filters or {}).items()):
        if value is None or column not in cat.columns(table):
            continue
        bound[f"_f{i}"] = _as_list(value)
        clauses.append(f"toString({column}) IN {{_f{i}:Array(String)}}")
    order = f" ORDER BY {time_col} {'DESC' if newest_first else 'ASC'}" if time_col else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    final = " FINAL" if cat.is_replacing(table) else ""
    frame = _df(settings, f"SELECT * FROM {table}{final} WHERE {' AND '.join(clauses)}{order}{tail}", bound)
    if newest_first and time_col:
        frame = frame.iloc[::-1].reset_index(drop=True)
    frame.attrs["available"] = True
    frame.attrs["table"] = table
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
        "logs",
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
    recs = _records("records", run_id, settings=settings, limit=None, filters={"name": name} if name else None)
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
    return pd.DataFrame({"data": payloads[-1:]})


def artifacts(run_id: str, kind: str | None = None, *, settings: Settings | None = None) -> pd.DataFrame:
    """Metadata of the files and images a run uploaded: name, kind, size, sha256, uri, content type.

    ``inline`` (the bytes of small images) is left out; the dashboard serves it.
    """
    frame = _records("artifacts", run_id, settings=settings, limit=None, filters={"kind": kind})
    return frame.drop(columns=["inline"], errors="ignore")


def artifact(run_id: str, name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One artifact's record, with ``inline`` as bytes (empty unless a small image travelled inline)."""
    settings = settings or Settings.from_env()
    table = _catalog(settings).find("artifacts")
    if table is None:
        raise RunNotFound(f"no artifact {name!r} in run {run_id!r}: this store keeps no artifacts")
    try:
        result = client(settings).query(
            f"SELECT name, kind, uri, content_type, size, inline FROM {table} FINAL "
            "WHERE run_id = {r:String} AND name = {n:String}",
            parameters={"r": run_id, "n": name},
            column_formats={"inline": "bytes"},
        )
    except OperationalError as exc:
        _client.cache_clear()
        raise _unavailable(settings, exc) from None
    if not result.result_rows:
        raise RunNotFound(f"no artifact {name!r} in run {run_id!r}")
    return dict(zip(result.column_names, result.result_rows[0], strict=True))


def images(run_id: str, *, settings: Settings | None = None) -> pd.DataFrame:
    """Metadata of the images a run logged (``artifacts(run_id, "image")``)."""
    return artifacts(run_id, "image", settings=settings)


# -- the fleet -----------------------------------------------------------------------------------


def _heartbeats(run_ids: list[str], settings: Settings | None) -> pd.DataFrame:
    table = _catalog(settings).find("heartbeats")
    if table is None or not run_ids:
        return pd.DataFrame()
    return _df(
        settings,
        f"SELECT run_id, max(ts) AS heartbeat FROM {table} FINAL WHERE run_id IN {{ids:Array(String)}} GROUP BY run_id",
        {"ids": run_ids},
    )


def fleet(
    *,
    window_seconds: float = 60.0,
    lost_after_seconds: float = 120.0,
    straggler_steps: float = 0.1,
    settings: Settings | None = None,
) -> dict[str, pd.DataFrame]:
    """What runs now: throughput, running runs with their ranks, lost runs and stragglers.

    ``throughput``: points per second in 5-second windows over the last 10 minutes.
    ``active``: each Running run's points in the last ``window_seconds`` and latest step.
    ``lost``: Running runs silent (no point, no heartbeat) for ``lost_after_seconds``. ``stragglers``: ranks whose
    latest step is behind their run's leading rank by more than ``straggler_steps`` of it.
    """
    bound = {"w": math.ceil(window_seconds)}
    throughput = _df(
        settings,
        "SELECT toStartOfInterval(ts, INTERVAL 5 SECOND) AS time, count() / 5 AS points_per_second "
        "FROM metric_points WHERE ts >= now64(3) - INTERVAL 10 MINUTE GROUP BY time ORDER BY time WITH FILL "
        "FROM toStartOfInterval(toDateTime(now(), 'UTC') - INTERVAL 10 MINUTE, INTERVAL 5 SECOND) "
        "TO toDateTime(now(), 'UTC') STEP 5",
    )
    ranks = _df(
        settings,
        "SELECT p.run_id AS run_id, p.rank AS rank, max(p.step) AS step, max(p.ts) AS last_ts, "
        "countIf(p.ts >= now64(3) - toIntervalSecond({w:UInt32})) AS recent_points "
        "FROM metric_points AS p WHERE p.run_id IN (SELECT run_id FROM runs FINAL WHERE status = 'Running') "
        "GROUP BY run_id, rank ORDER BY run_id, rank",
        bound,
    )
    running = runs(status="Running", limit=None, settings=settings)
    now = pd.Timestamp.now(tz="UTC")
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
    last_seen = pd.to_datetime(active["last_ts"], utc=True)
    beats = _heartbeats(active["run_id"].tolist(), settings)
    if not beats.empty:
        beat = pd.to_datetime(active[["run_id"]].merge(beats, on="run_id", how="left")["heartbeat"], utc=True)
        last_seen = pd.concat([last_seen, beat], axis=1).max(axis=1)
    last_seen = last_seen.fillna(pd.to_datetime(active["start_time"], utc=True))
    active["last_seen"] = last_seen
    active["silent_seconds"] = (now - last_seen).dt.total_seconds()
    active["points_per_second"] = active["recent_points"].fillna(0) / window_seconds
    lost = active[active["silent_seconds"] > lost_after_seconds].reset_index(drop=True)
    stragglers = pd.DataFrame(columns=["run_id", "rank", "step", "lead_step", "behind"])
    if not ranks.empty:
        lead = ranks.groupby("run_id")["step"].transform("max")
        behind = lead - ranks["step"]
        mask = (behind > straggler_steps * lead.clip(lower=1)) & (ranks.groupby("run_id")["rank"].transform("size") > 1)
        stragglers = ranks[mask].assign(lead_step=lead[mask], behind=behind[mask])[list(stragglers.columns)]
    return {
        "throughput": throughput,
        "active": active.reset_index(drop=True),
        "lost": lost,
        "stragglers": stragglers.reset_index(drop=True),
    }
