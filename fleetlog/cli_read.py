"""Reading commands of the CLI: runs, show, metrics, tail, export, sql, and the dashboard (ui).

Registered by ``fleetlog.cli``. Listings print rich tables, or JSON with ``--json``.
A store that cannot be reached exits 2 with the command that starts it; an unknown
run exits 1 and says how to list runs.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text as RichText

from fleetlog.config import Settings
from fleetlog.events import RunStatus

__all__ = ["register", "sparkline"]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

# typer reads these annotations at run time; keep Optional[...] for Python 3.10's typer.
Names = Optional[list[str]]  # noqa: UP045
Text = Optional[str]  # noqa: UP045
Number = Optional[int]  # noqa: UP045
FilePath = Optional[Path]  # noqa: UP045
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (JSON)")]
BLOCKS = "▁▂▃▄▅▆▇█"
EMPTY_POINTS = pa.schema(
    {
        "metric": pa.string(),
        "rank": pa.uint32(),
        "step": pa.int64(),
        "ts": pa.timestamp("ms", "UTC"),
        "value": pa.float64(),
    }
)


def _reading(fn: F) -> F:
    """Turn the query layer's errors into one clear line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        from fleetlog.errors import RunNotFound, StoreUnavailable

        try:
            return fn(*args, **kwargs)
        except StoreUnavailable as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except (RunNotFound, ValueError, ClickHouseError) as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _pairs(items: list[str] | None, what: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key:
            raise typer.BadParameter(f"{what} needs key=value or key, got {item!r}")
        out[key] = value if sep else None
    return out


def _json(data: Any) -> None:
    from fleetlog.jsonable import jsonable

    sys.stdout.write(json.dumps(jsonable(data), default=str) + "\n")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _print_frame(frame: pd.DataFrame, title: str | None = None, max_rows: int = 200) -> None:
    """A frame as a table. Every header and cell is a ``Text``: user data (a run named ``[/]``) is never markup."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:  # ids stay whole on narrow terminals; other columns wrap
        wide = column in ("run_id", "metric", "key")
        table.add_column(RichText(str(column)), no_wrap=wide, min_width=_width(frame[column]) if wide else None)
    for row in frame.head(max_rows).itertuples(index=False):
        table.add_row(*[RichText(_cell(v)) for v in row])
    console.print(table)
    if len(frame) > max_rows:
        console.print(f"[dim]... {len(frame) - max_rows} more rows (use --json for all)[/]")


def _width(values: pd.Series) -> int:
    return min(max((len(str(v)) for v in values), default=4), 40)


def sparkline(values: Any) -> str:
    """Values as one line of block characters (NaN as a space)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return " " * arr.size
    lo, hi = float(finite.min()), float(finite.max())
    scale = (len(BLOCKS) - 1) / (hi - lo) if hi > lo else 0.0
    return "".join(BLOCKS[round((v - lo) * scale)] if np.isfinite(v) else " " for v in arr)


def chart(values: Any, height: int = 8) -> list[str]:
    """A block chart ``height`` lines tall, one column per value (eighth-block resolution)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = hi - lo or 1.0
    levels = np.where(np.isfinite(arr), np.round((arr - lo) / span * (height * 8 - 1)) + 1, 0).astype(int)
    lines = []
    for row in range(height - 1, -1, -1):
        cells = np.clip(levels - row * 8, 0, 8)
        lines.append("".join(" " if c == 0 else BLOCKS[c - 1] for c in cells))
    return lines


# -- commands -------------------------------------------------------------------------------------


@_reading
def runs_cmd(
    experiment: Annotated[Names, typer.Option("--experiment", "-e", help="experiment (repeatable)")] = None,
    status: Annotated[Names, typer.Option("--status", "-s", help="Running, Completed...")] = None,
    tag: Annotated[Names, typer.Option(help="key=value or key (repeatable)")] = None,
    param: Annotated[Names, typer.Option(help="key=value (repeatable)")] = None,
    metric: Annotated[Names, typer.Option(help="add <metric>.last/min/max columns")] = None,
    order_by: Annotated[str, typer.Option(help="a result column; '-' first for descending")] = "-start_time",
    limit: Annotated[int, typer.Option(help="at most this many runs")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs with their status, times, params and tags."""
    from fleetlog import query as q

    frame = q.runs(
        experiment=experiment or None,
        status=status or None,
        tags=_pairs(tag, "--tag") if tag else None,
        params=_pairs(param, "--param") if param else None,
        metrics=metric or [],
        order_by=order_by,
        limit=limit,
    )
    if as_json:
        _json(frame.to_dict("records"))
        return
    if frame.empty:
        console.print("no runs match")
        return
    keep = ["run_id", "name", "experiment", "status", "start_time", "duration_seconds"]
    extra = [c for c in frame.columns if c.startswith(("params.", "tags.")) or c.endswith((".last", ".min", ".max"))]
    _print_frame(frame[keep + extra[:12]].rename(columns={"duration_seconds": "seconds"}))


@_reading
def show(
    run_id: Annotated[str, typer.Argument(help="run id")],
    as_json: JsonOpt = False,
) -> None:
    """One run: its record, params, tags, metrics (last/min/max) and latest log lines."""
    from fleetlog import query as q

    record = q.run(run_id)
    metrics = q.summaries([run_id])
    logs = q.logs(run_id, limit=10)
    if as_json:
        _json({**record, "metrics": metrics.to_dict("records"), "logs": logs.to_dict("records")})
        return
    name, status = escape(str(record["name"] or run_id)), escape(str(record["status"]))
    console.print(f"[bold]{name}[/]  {escape(run_id)}  [{_status_style(record['status'])}]{status}[/]")
    facts = ("experiment", "project", "start_time", "end_time", "duration", "host", "world_size")
    record["duration"] = _duration(record)
    shown = [f"[dim]{k}[/] {escape(_cell(record.get(k)))}" for k in facts if record.get(k) not in (None, "")]
    console.print("  ".join(shown))
    if record.get("error_message"):
        console.print(RichText(f"{record['error_type']}: {record['error_message']}", style="red"))
    for what in ("params", "tags"):
        if record[what]:
            _print_frame(pd.DataFrame({"key": list(record[what]), "value": list(record[what].values())}), what)
    if not metrics.empty:
        cols = ["metric", "count", "last", "min", "max", "last_step"]
        _print_frame(metrics[cols], "metrics")
    if not logs.empty:
        console.print("[bold]last log lines[/]")
        for line in logs.itertuples():
            console.print(RichText.assemble((_cell(line.ts), "dim"), " ", str(line.message)), highlight=False)


def _status_style(status: str) -> str:
    return {RunStatus.RUNNING: "blue", RunStatus.COMPLETED: "green", RunStatus.FAILED: "red"}.get(status, "yellow")


def _duration(record: dict[str, Any]) -> str:
    end = record.get("end_time") or pd.Timestamp.now(tz="UTC")
    seconds = (pd.Timestamp(end) - pd.Timestamp(record["start_time"])).total_seconds()
    return f"{seconds:.1f}s"


@_reading
def metrics_cmd(
    run_id: Annotated[str, typer.Argument(help="run id")],
    names: Annotated[Names, typer.Argument(help="metrics (default: all)")] = None,
    width: Annotated[int, typer.Option(help="points per sparkline")] = 60,
    height: Annotated[int, typer.Option(help="lines per chart; 1 draws sparklines")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Each metric as a terminal sparkline (or a chart with --height) with last/min/max."""
    from fleetlog import query as q

    q.run(run_id)  # RunNotFound for a wrong id, before any series is read
    summary = q.summaries([run_id], names or None).set_index("metric")
    chosen = names or summary.index.tolist()
    missing = [n for n in chosen if n not in summary.index]
    if missing:
        raise ValueError(f"run {run_id!r} has no metric {missing[0]!r}; it has {summary.index.tolist()}")
    out, table = [], Table("metric", "series", "last", "min", "max", "points")
    for name in chosen:
        series = q.metric(run_id, name, points=width, rank=None)
        values = series.groupby("step")["value"].mean()
        s = summary.loc[name]
        if as_json:
            out.append({"metric": name, "step": values.index.tolist(), "value": values.tolist(), **s.to_dict()})
        elif height > 1:
            console.print(
                f"[bold]{escape(name)}[/]  last {_cell(s['last'])}  min {_cell(s['min'])}  max {_cell(s['max'])}"
            )
            for line in chart(values.to_numpy(), height):
                console.print(line, markup=False, highlight=False)
            console.print(f"[dim]steps {values.index.min()}..{values.index.max()}[/]")
        else:
            row = [sparkline(values.to_numpy()), _cell(s["last"]), _cell(s["min"]), _cell(s["max"]), str(s["count"])]
            table.add_row(*[RichText(cell) for cell in (name, *row)])
    if as_json:
        _json(out)
    elif height <= 1:
        console.print(table)


@_reading
def tail(
    run_id: Annotated[str, typer.Argument(help="run id")],
    metric: Annotated[Names, typer.Option(help="only these metrics (repeatable)")] = None,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 1.0,
    timeout: Annotated[float, typer.Option(help="stop after this many seconds (0: when the run ends)")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Follow a run: metric values and log lines as they arrive, until it ends (or Ctrl-C)."""
    from fleetlog import query as q

    seen: dict[str, int] = {}
    since = None
    deadline = time.monotonic() + timeout if timeout > 0 else None
    status = q.run(run_id)["status"]
    try:
        while True:
            ended = status in q.TERMINAL  # read before this poll: one more poll after the end
            for m in q.summaries([run_id], metric or None).itertuples():
                if m.last_step > seen.get(m.metric, -(2**63)):
                    seen[m.metric] = m.last_step
                    event = {"kind": "metric", "metric": m.metric, "step": m.last_step, "value": m.last}
                    _json(event) if as_json else console.print(
                        f"[cyan]{escape(m.metric)}[/] step {m.last_step}: {_cell(m.last)}"
                    )
            for line in q.logs(run_id, since=since, limit=1000).itertuples():
                since = line.ts
                event = {"kind": "log", "ts": line.ts, "stream": line.stream, "message": line.message}
                text = RichText.assemble((_cell(line.ts), "dim"), " ", str(line.message))
                _json(event) if as_json else console.print(text, highlight=False)
            if ended or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(interval)
            status = q.run(run_id)["status"]
    except KeyboardInterrupt:
        pass
    if as_json:
        _json({"kind": "status", "status": status})
    else:
        console.print(RichText(f"run {run_id}: {status}"))


@_reading
def export(
    run_id: Annotated[str, typer.Argument(help="run id")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or csv")] = "parquet",
    output: Annotated[FilePath, typer.Option("--output", "-o", help="file (default RUN.parquet/.csv)")] = None,
    metric: Annotated[Names, typer.Option(help="only these metrics (repeatable)")] = None,
) -> None:
    """Write every raw point of a run (metric, rank, step, ts, value) to Parquet or CSV, streaming."""
    from fleetlog import query as q

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"--format must be parquet or csv, not {fmt!r}")
    record = q.run(run_id)
    path = output or Path(f"{run_id.replace('/', '_')}.{fmt}")
    rows, writer = 0, None
    try:
        for batch in q.points_stream(run_id, metric or None):
            writer = writer or _writer(fmt, path, batch.schema, record)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no points: an empty file with the columns
            writer = _writer(fmt, path, EMPTY_POINTS, record)
    finally:
        if writer is not None:
            writer.close()
    console.print(RichText(f"wrote {rows:,} points to {path}"))


def _writer(fmt: str, path: Path, schema: Any, record: dict[str, Any]) -> Any:
    """A Parquet writer (zstd; the run's record in the file's metadata) or a CSV writer."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt == "csv":
        return pcsv.CSVWriter(path, schema)
    meta = {b"fleetlog.run": json.dumps(_export_meta(record), default=str).encode()}
    return pq.ParquetWriter(path, schema.with_metadata(meta), compression="zstd")


def _export_meta(record: dict[str, Any]) -> dict[str, Any]:
    keep = ("run_id", "name", "experiment", "project", "status", "start_time", "end_time", "params", "tags")
    return {k: record.get(k) for k in keep}


@_reading
def sql(
    query: Annotated[str, typer.Argument(help="SQL; use {name:Type} placeholders with --param name=value")],
    param: Annotated[Names, typer.Option(help="name=value, bound server-side")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run SQL against the store and print the result."""
    from fleetlog import query as q

    params = {k: v or "" for k, v in _pairs(param, "--param").items()}
    frame = q.sql(query, params)
    if as_json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")
        return
    _print_frame(frame)


def ui(
    host: Annotated[Text, typer.Option(help="address to bind [FLEETLOG_UI_HOST]")] = None,
    port: Annotated[Number, typer.Option(help="port [FLEETLOG_UI_PORT]")] = None,
    token: Annotated[Text, typer.Option(help="required token [FLEETLOG_UI_TOKEN]")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the dashboard in the foreground (``fleetlog up`` starts it in the background)."""
    import logging

    from fleetlog.errors import ConfigError
    from fleetlog.ui.server import serve

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env(ui_host=host, ui_port=port, ui_token=token)
    try:
        serve(settings, log_level=log_level)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("runs")(runs_cmd)
    app.command("show")(show)
    app.command("metrics")(metrics_cmd)
    app.command("tail")(tail)
    app.command("export")(export)
    app.command("sql")(sql)
    app.command("ui")(ui)
