"""The reading commands (runs, show, metrics, tail, export, sql) over the synthetic store."""

from __future__ import annotations

import json

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fleetlog.cli import app
from fleetlog.cli_read import chart, sparkline


@pytest.fixture
def cli(query_store, monkeypatch):
    monkeypatch.setenv("FLEETLOG_CLICKHOUSE_URL", query_store.settings.store.url)
    monkeypatch.setenv("FLEETLOG_HOME", str(query_store.settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_runs_json_and_table(cli):
    out = cli("runs", "--json", "--experiment", "alpha", "--metric", "loss", "--order-by", "run_id")
    rows = json.loads(out.stdout)
    assert [r["run_id"] for r in rows] == ["r-long", "r-short"] and rows[0]["loss.max"] == 1.0
    assert [r["run_id"] for r in json.loads(cli("runs", "--json", "--param", "opt=sgd").stdout)] == ["r-short"]
    assert [r["run_id"] for r in json.loads(cli("runs", "--json", "--tag", "fast").stdout)] == ["r-short"]
    table = cli("runs")
    assert table.exit_code == 0 and "r-other" in table.stdout and "Failed" in table.stdout


def test_show(cli):
    out = cli("show", "r-other")
    assert out.exit_code == 0 and "ValueError: bad things" in out.stdout and "lr" in out.stdout
    body = json.loads(cli("show", "r-long", "--json").stdout)
    assert body["status"] == "Completed" and {m["metric"] for m in body["metrics"]} == {"acc", "loss"}


def test_metrics_sparklines_and_chart(cli):
    out = cli("metrics", "r-long", "loss", "--width", "30")
    assert out.exit_code == 0 and "loss" in out.stdout and "█" in out.stdout
    tall = cli("metrics", "r-long", "acc", "--height", "4", "--width", "20")
    assert tall.exit_code == 0 and "steps 0..19000" in tall.stdout
    body = json.loads(cli("metrics", "r-long", "--json", "--width", "10").stdout)
    assert [m["metric"] for m in body] == ["acc", "loss"] and len(body[0]["step"]) == 10
    bad = cli("metrics", "r-long", "nope")
    assert bad.exit_code == 1 and "no metric 'nope'" in bad.stderr


def test_tail_prints_latest_values_and_stops_at_the_end_of_a_finished_run(cli):
    out = cli("tail", "r-other", "--json", "--interval", "0.1")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0] == {"kind": "metric", "metric": "loss", "step": 49, "value": 3.0}
    assert events[-1] == {"kind": "status", "status": "Failed"}
    running = cli("tail", "r-short", "--timeout", "0.3", "--interval", "0.1")
    assert running.exit_code == 0 and "loss" in running.stdout and "Running" in running.stdout


def test_export_parquet_and_csv(cli, tmp_path):
    target = tmp_path / "r.parquet"
    out = cli("export", "r-short", "--output", str(target))
    assert out.exit_code == 0 and "500 points" in out.stdout
    table = pq.read_table(target)
    assert table.num_rows == 500 and table.column_names == ["metric", "rank", "step", "ts", "value"]
    assert json.loads(table.schema.metadata[b"fleetlog.run"])["params"]["opt"] == "sgd"
    csv = tmp_path / "r.csv"
    assert cli("export", "r-other", "-f", "csv", "-o", str(csv)).exit_code == 0
    assert pcsv.read_csv(csv).num_rows == 50
    empty = tmp_path / "e.csv"
    assert cli("export", "r-other", "-f", "csv", "-o", str(empty), "--metric", "none").exit_code == 0
    assert empty.read_text().splitlines()[0].replace('"', "") == "metric,rank,step,ts,value"
    assert cli("export", "r-other", "-f", "xml").exit_code == 1


def test_sql_binds_params(cli):
    out = cli(
        "sql", "SELECT count() AS n FROM metric_points WHERE run_id = {r:String}", "--param", "r=r-other", "--json"
    )
    assert json.loads(out.stdout) == [{"n": 50}]


def test_unknown_run_and_store_down(cli, monkeypatch):
    missing = cli("show", "nope")
    assert missing.exit_code == 1 and "fleetlog runs" in missing.stderr
    monkeypatch.setenv("FLEETLOG_CLICKHOUSE_URL", "http://127.0.0.1:1")
    down = cli("runs")
    assert down.exit_code == 2 and "fleetlog up" in down.stderr


def test_sparkline_and_chart_helpers():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1, float("nan"), 1]) == "▁ ▁"
    lines = chart([0, 1], height=2)
    assert lines == [" █", "▁█"]
