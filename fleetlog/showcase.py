"""``fleetlog demo``: start the stack, run the simulated fleet, show what landed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.demo import FleetPlan, curves, launch
from fleetlog.stack import LocalStack

__all__ = ["run_demo"]


def _landed(settings: Settings, run_ids: list[str]) -> int:
    """Points of the simulated metrics only (telemetry's sys/ samples come on top)."""
    df = query.sql(
        "SELECT count() AS n FROM metric_points WHERE run_id IN {ids:Array(String)} AND metric IN {m:Array(String)}",
        {"ids": run_ids, "m": list(curves(0, 0, 2))},
        settings=settings,
    )
    return int(df["n"].iloc[0])


def _finished(settings: Settings, run_ids: list[str]) -> int:
    df = query.sql(
        "SELECT count() AS n FROM runs FINAL WHERE run_id IN {ids:Array(String)} AND status IN ('Completed', 'Failed')",
        {"ids": run_ids},
        settings=settings,
    )
    return int(df["n"].iloc[0])


def run_demo(settings: Settings, plan: FleetPlan, console: Console | None = None) -> dict:
    """Run the whole demo; return the figures it printed (tests read them)."""
    console = console or Console()
    stack = LocalStack(settings)
    with console.status("starting Kafka and the sink (first run fetches Kafka's JARs from Maven Central)..."):
        stack.up()
    kafka, endpoint = settings.kafka.bootstrap, settings.store.http_url
    console.print(f"[green]stack up[/]: Kafka {kafka}, ClickHouse endpoint {endpoint}")
    stamp = time.strftime("%H%M%S")
    run_ids = [plan.run_id(i, stamp) for i in range(plan.runs)]
    expected = plan.runs * plan.ranks * plan.steps * plan.metrics_per_step
    started = time.monotonic()
    procs = launch(plan, stamp)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} points"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"{plan.runs} runs x {plan.ranks} ranks landing in ClickHouse", total=expected)
        landed = 0
        while landed < expected and time.monotonic() - started < plan.seconds * 6 + 60:
            time.sleep(0.5)
            landed = _landed(settings, run_ids)
            progress.update(task, completed=landed)
            if any(p.poll() not in (None, 0) for p in procs):
                break
    deadline = time.monotonic() + 30
    while _finished(settings, run_ids) < len(run_ids) and time.monotonic() < deadline:
        time.sleep(0.5)  # run records travel on their own topic; let the last status land
    logged = sum(
        json.loads((p.communicate()[0] or b"{}").decode().strip().splitlines()[-1]).get("points", 0) for p in procs
    )
    elapsed = time.monotonic() - started
    figures = {
        "expected": expected,
        "logged": logged,
        "landed": landed,
        "seconds": round(elapsed, 1),
        "points_per_second": round(landed / elapsed),
    }
    _print_report(console, settings, run_ids, figures)
    figures["examples"] = _run_examples(console, settings)
    return figures


def _run_examples(console: Console, settings: Settings) -> dict[str, str]:
    """The seed's two scenarios: an interactive session, and a submitted script with its output streamed."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    if not examples.is_dir():
        return {}
    env = {**os.environ, **settings.to_env()}
    statuses = {}
    for script in ("interactive.py", "submit.py"):
        console.rule(f"examples/{script}")
        out = subprocess.run(
            [sys.executable, str(examples / script)], env=env, capture_output=True, text=True, timeout=300
        )
        lines = (out.stdout + out.stderr).strip().splitlines()
        console.print("\n".join(lines[-8:]), markup=False, highlight=False)
        run_id = lines[-1].split()[1].rstrip(":") if lines and lines[-1].startswith("run ") else ""
        statuses[script] = run_id
    time.sleep(1.5)  # the sink's batch interval
    ids = [r for r in statuses.values() if r]
    if ids:
        kinds = query.sql(
            """
            SELECT * FROM (
            SELECT run_id, 'records' AS what, arrayStringConcat(groupUniqArray(type), ', ') AS detail
            FROM run_records WHERE run_id IN {ids:Array(String)} GROUP BY run_id
            UNION ALL
            SELECT run_id, 'files', toString(count()) FROM run_artifacts FINAL WHERE run_id IN {ids:Array(String)}
            GROUP BY run_id
            UNION ALL
            SELECT run_id, 'log lines', toString(count()) FROM run_logs WHERE run_id IN {ids:Array(String)}
            GROUP BY run_id
            ) ORDER BY run_id, what
            """,
            {"ids": ids},
            settings=settings,
        )
        table = Table(title="What the examples logged (read back from ClickHouse)")
        for col in ("run", "what", "detail"):
            table.add_column(col)
        for row in kinds.itertuples(index=False):
            table.add_row(*map(str, row))
        console.print(table)
    return statuses


def _print_report(console: Console, settings: Settings, run_ids: list[str], figures: dict) -> None:
    runs = query.sql(
        """
        SELECT r.run_id, r.name, r.status, r.world_size, r.error_message,
               p.points, p.ranks, round(p.seconds, 1) AS seconds
        FROM (SELECT * FROM runs FINAL WHERE run_id IN {ids:Array(String)}) AS r
        LEFT JOIN (SELECT run_id, count() AS points, uniqExact(rank) AS ranks,
                          dateDiff('millisecond', min(ts), max(ts)) / 1000 AS seconds
                   FROM metric_points WHERE run_id IN {ids:Array(String)} GROUP BY run_id) AS p USING run_id
        ORDER BY run_id
        """,
        {"ids": run_ids},
        settings=settings,
    )
    table = Table(title="Runs (read back from ClickHouse)")
    for col in ("run", "status", "ranks", "points", "seconds", "error"):
        table.add_column(col)
    for row in runs.itertuples():
        style = {"Completed": "green", "Failed": "red"}.get(row.status, "yellow")
        table.add_row(
            row.run_id,
            f"[{style}]{row.status}[/]",
            str(row.ranks),
            f"{row.points:,}",
            str(row.seconds),
            row.error_message[:50],
        )
    console.print(table)
    last = query.sql(
        """
        SELECT run_id, metric, argMax(value, step) AS last, min(value) AS min, countIf(isNaN(value)) AS nans
        FROM metric_points
        WHERE run_id IN {ids:Array(String)} AND rank = 0
          AND metric IN ('train/loss', 'train/lr', 'perf/samples_per_sec')
        GROUP BY run_id, metric ORDER BY run_id, metric
        """,
        {"ids": run_ids},
        settings=settings,
    )
    table = Table(title="Key metrics, rank 0 (last value, min, NaN count)")
    for col in ("run", "metric", "last", "min", "NaNs"):
        table.add_column(col)
    for row in last.itertuples():
        table.add_row(row.run_id, row.metric, f"{row.last:.4g}", f"{row.min:.4g}", str(row.nans))
    console.print(table)
    console.print(
        f"[bold]{figures['landed']:,}[/] of {figures['expected']:,} points landed in {figures['seconds']} s "
        f"({figures['points_per_second']:,} points/s end to end, including start-up of the ranks)."
    )
    console.print(
        "Look further:\n"
        "  fleetlog status --json\n"
        '  fleetlog sql "SELECT metric, count(), avg(value) FROM metric_points GROUP BY metric LIMIT 10"\n'
        f"  python -c \"import fleetlog.query as q; print(q.sql('SELECT * FROM runs FINAL'))\"\n"
        f"  any ClickHouse client: {settings.store.http_url} (database fleetlog; `fleetlog store credentials --json`)\n"
        "  fleetlog down   # stop the broker and the sink"
    )
