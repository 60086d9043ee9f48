"""The query API against a synthetic store served over HTTP (see tests/unit/conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from polling import wait_for

from fleetlog import query as q
from fleetlog.config import Settings
from fleetlog.errors import RunNotFound, StoreUnavailable
from fleetlog.query.series import nice_bucket
from fleetlog.store.client import connect
from fleetlog.store.schema_tables import spec


@pytest.fixture
def s(query_store):
    return query_store.settings


def test_runs_lists_every_run_with_params_and_tags(s):
    df = q.runs(settings=s)
    assert set(df["run_id"]) == {"r-long", "r-short", "r-other"}
    row = df.set_index("run_id").loc["r-long"]
    assert row["status"] == "Completed" and row["params.lr"] == 0.1 and row["params.layers"] == 12
    assert row["params.opt"] == "adam" and row["tags.suite"] == "unit"
    assert df["run_id"].iloc[0] == "r-short"  # newest first by default
    assert df.set_index("run_id").loc["r-long", "duration_seconds"] == pytest.approx(200, abs=0.01)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"experiment": "alpha"}, {"r-long", "r-short"}),
        ({"experiment": ["beta"]}, {"r-other"}),
        ({"status": "Running"}, {"r-short"}),
        ({"status": ["Completed", "Failed"]}, {"r-long", "r-other"}),
        ({"params": {"lr": 0.1}}, {"r-long", "r-other"}),
        ({"params": {"lr": [0.01, 0.5]}}, {"r-short"}),
        ({"params": {"lr": 0.1, "opt": "adam"}}, {"r-long"}),
        ({"tags": {"suite": "unit"}}, {"r-long", "r-short"}),
        ({"tags": ["fast"]}, {"r-short"}),
        ({"where": "error_type = {t:String}", "parameters": {"t": "ValueError"}}, {"r-other"}),
    ],
)
def test_runs_filters(s, kwargs, expected):
    assert set(q.runs(settings=s, **kwargs)["run_id"]) == expected


def test_runs_order_limit_and_metric_summaries(s):
    df = q.runs(metrics=["loss"], order_by="loss.min", limit=2, settings=s)
    assert df["run_id"].tolist() == ["r-long", "r-short"]
    long = df.iloc[0]
    assert long["loss.min"] == pytest.approx(1 / 20.999) and long["loss.max"] == 1.0
    assert long["loss.last"] == pytest.approx(1 / 20.999)
    assert q.runs(order_by="run_id", settings=s)["run_id"].tolist() == ["r-long", "r-other", "r-short"]
    with pytest.raises(ValueError, match="cannot order by"):
        q.runs(order_by="nope; DROP TABLE runs", settings=s)


def test_filter_values_are_bound_not_pasted(s):
    hostile = "x' OR 1=1 --"
    assert q.runs(experiment=hostile, settings=s).empty
    assert q.runs(params={hostile: hostile}, settings=s).empty
    assert q.metric("r-long", hostile, settings=s).empty


def test_run_detail_and_unknown_run(s):
    r = q.run("r-other", settings=s)
    assert r["status"] == "Failed" and r["error_message"] == "bad things" and r["params"] == {"lr": 0.1}
    assert r["end_time"] is not None and q.run("r-short", settings=s)["end_time"] is None
    with pytest.raises(RunNotFound, match="fleetlog runs"):
        q.run("missing", settings=s)


def test_summaries_leave_nan_out_of_min_max_and_count_it(s):
    df = q.summaries(["r-long"], settings=s).set_index("metric")
    assert df.loc["loss", "count"] == 20_000 and df.loc["loss", "nonfinite"] == 1
    assert df.loc["loss", "max"] == 1.0 and df.loc["loss", "last_step"] == 19_999
    assert q.metric_names(["r-long", "r-other"], settings=s) == ["acc", "loss"]


def test_experiments(s):
    df = q.experiments(settings=s).set_index("experiment")
    assert df.loc["alpha", "runs"] == 2 and df.loc["alpha", "running"] == 1 and df.loc["beta", "failed"] == 1


def test_nice_bucket():
    assert nice_bucket(20_000, 1500) == 20
    assert nice_bucket(1000, 1500) == 1
    assert nice_bucket(10_000_000, 1500) == 10_000
    assert nice_bucket(3000, 1000) == 5


def test_metric_auto_downsamples_on_the_server_without_rollups(s):
    df = q.metric("r-long", "loss", settings=s)
    res = df.attrs["resolution"]
    assert res["source"] == "downsample" and res["bucket"] == 20 and res["raw_points"] == 20_000
    assert len(df) == 1000 and df["count"].sum() == 20_000
    assert (df["min"] <= df["value"]).all() and (df["value"] <= df["max"]).all()
    assert df["step"].tolist() == list(range(0, 20_000, 20))
    nan_bucket = df[df["step"] == 5000].iloc[0]
    assert nan_bucket["nonfinite"] == 1 and np.isfinite(nan_bucket["value"])
    assert df["value"].iloc[0] == pytest.approx(np.mean(1 / (1 + np.arange(20) / 1000)))


def test_metric_raw_when_it_fits_and_when_asked(s):
    small = q.metric("r-other", "loss", settings=s)
    assert small.attrs["resolution"]["source"] == "raw" and len(small) == 50
    zoomed = q.metric("r-long", "loss", step_range=(100, 1099), settings=s)
    assert zoomed.attrs["resolution"]["source"] == "raw" and zoomed["step"].tolist() == list(range(100, 1100))
    raw = q.metric("r-long", "loss", resolution="raw", step_range=(0, 9), settings=s)
    assert raw["value"].tolist()[:2] == [1.0, pytest.approx(1 / 1.001)]
    forced = q.metric("r-long", "loss", resolution=1000, settings=s)
    assert forced.attrs["resolution"]["bucket"] == 1000 and len(forced) == 20
    with pytest.raises(ValueError, match="resolution"):
        q.metric("r-long", "loss", resolution="fine", settings=s)


def test_metric_zoom_refines_the_bucket(s):
    wide = q.metric("r-long", "loss", points=100, settings=s)
    narrow = q.metric("r-long", "loss", points=100, step_range=(1000, 2999), settings=s)
    assert wide.attrs["resolution"]["bucket"] == 200 and narrow.attrs["resolution"]["bucket"] == 20
    assert narrow["step"].min() == 1000 and narrow["step"].max() == 2980


def test_metric_time_range_and_ranks(s):
    both = q.metric("r-short", "loss", settings=s)
    assert sorted(both.groupby("rank").size().to_dict().items()) == [(0, 300), (1, 200)]
    assert len(q.metric("r-short", "loss", rank=1, settings=s)) == 200
    start = q.run("r-long", settings=s)["start_time"]
    first = q.metric("r-long", "loss", time_range=(start, pd.Timestamp(start) + pd.Timedelta(seconds=1)), settings=s)
    assert first["step"].max() <= 100 and first.attrs["resolution"]["source"] == "raw"


def test_metric_several_runs_share_buckets(s):
    df = q.metric(["r-long", "r-other"], "loss", points=10, settings=s)
    assert set(df["run_id"]) == {"r-long", "r-other"}
    assert df.attrs["resolution"]["bucket"] == 2000
    assert df[df["run_id"] == "r-other"]["count"].tolist() == [50]


def test_compare_keeps_differing_params(s):
    df = q.compare(["r-long", "r-other"], ["loss"], settings=s)
    assert df["run_id"].tolist() == ["r-long", "r-other"]
    assert "params.lr" not in df.columns  # same value in both
    assert "params.opt" in df.columns and "loss.last" in df.columns
    with pytest.raises(RunNotFound):
        q.compare(["r-long", "missing"], ["loss"], settings=s)


def test_optional_kinds_read_their_tables_or_say_they_are_absent(s, query_store):
    assert q.alerts(settings=s).attrs["available"] is True and q.alerts(settings=s).empty
    logs = q.logs("r-long", settings=s)
    assert logs.empty and logs.attrs["available"] is True
    query_store.owner.insert(
        "run_logs",
        [
            ["r-long", pd.Timestamp(1e9 + i, unit="s", tz="UTC"), 0, "stdout", "INFO", "", f"line {i}", i]
            for i in range(5)
        ],
        column_names=["run_id", "ts", "rank", "stream", "level", "logger", "message", "seq"],
    )
    got = q.logs("r-long", limit=3, settings=s)
    assert got["message"].tolist() == ["line 2", "line 3", "line 4"]
    assert q.logs("r-long", stream="stderr", settings=s).empty
    after = q.logs("r-long", since=pd.Timestamp(1e9 + 3, unit="s", tz="UTC"), settings=s)
    assert after["message"].tolist() == ["line 4"]
    # The store's tables are re-read from system.tables every few seconds: a table that goes is seen gone,
    # one that comes back is seen again (a store that had no run_logs yet gets them when migrated).
    query_store.owner.command("RENAME TABLE run_logs TO run_logs_off")
    try:
        gone = (lambda: q.logs("r-long", settings=s).attrs["available"] is False, 15, "run_logs to be seen gone")
        wait_for(*gone, retry_on=(DatabaseError,))
    finally:
        query_store.owner.command("RENAME TABLE run_logs_off TO run_logs")
    wait_for(lambda: q.logs("r-long", settings=s).attrs["available"], 15, "run_logs to be seen again")


def test_tables_and_artifacts(s, query_store):
    rows = [
        ["r-long", "cm", "table", "", json.dumps({"k": [1, 2], "v": ["a", "b"]}), 1],
        ["r-long", "epochs", "row", "", json.dumps({"epoch": 1, "loss": 0.5}), 2],
        ["r-long", "epochs", "row", "", json.dumps({"epoch": 2, "loss": 0.25}), 3],
        ["r-long", "classes", "list", "", json.dumps([3, 1, 2]), 4],
    ]
    stamp = pd.Timestamp.now(tz="UTC")
    query_store.owner.insert(
        "run_records",
        [[*r, None, stamp] for r in rows],
        column_names=["run_id", "name", "type", "description", "data", "idx", "step", "ts"],
    )
    listing = q.tables("r-long", settings=s)
    assert listing[["name", "type", "records"]].values.tolist() == [
        ["classes", "list", 1],
        ["cm", "table", 1],
        ["epochs", "row", 2],
    ]
    assert q.tables("r-long", "cm", settings=s).to_dict("list") == {"k": [1, 2], "v": ["a", "b"]}
    assert q.tables("r-long", "epochs", settings=s)["loss"].tolist() == [0.5, 0.25]
    assert q.tables("r-long", "classes", settings=s)["classes"].tolist() == [3, 1, 2]
    query_store.owner.insert(
        "run_artifacts",
        [
            ["r-long", "plot", "image", 3, "", "file:///nowhere/plot.png", "image/png", "", b"PNG", stamp],
            ["r-long", "model.bin", "file", 9, "", "file:///nowhere/model.bin", "", "", b"", stamp],
        ],
        column_names=["run_id", "name", "kind", "size", "sha256", "uri", "content_type", "description", "inline", "ts"],
    )
    assert q.images("r-long", settings=s)["name"].tolist() == ["plot"]
    files = q.artifacts("r-long", settings=s)
    assert sorted(files["name"]) == ["model.bin", "plot"] and "inline" not in files.columns


def test_rollups_are_used_when_present_and_completed_from_raw(s, query_store):
    owner = query_store.owner
    # Rollups at 10 steps for the first 15,000 steps only (a processor lagging behind), in the
    # processors' shape: bucket = floor(step / 10); count includes NaN, sum/min/max leave it out.
    raw = q.metric("r-long", "loss", resolution="raw", settings=s)
    owner.insert_df("metric_rollups", _rollup_rows(raw, until=14_999))
    try:
        df = q.metric("r-long", "loss", settings=s)
        res = df.attrs["resolution"]
        assert res["source"] == "rollup" and res["rollup_resolution"] == 10 and res["bucket"] == 20
        assert res["table"] == "metric_rollups"
        assert len(df) == 1000 and df["step"].tolist() == list(range(0, 20_000, 20))
        # r-other has no rollup rows: reading it from the rollup would drop its points
        both = q.metric(["r-long", "r-other"], "loss", settings=s)
        assert both.attrs["resolution"]["source"] == "downsample" and both["count"].sum() == 20_050
        owner.command("TRUNCATE TABLE metric_rollups")
        ref = q.metric("r-long", "loss", settings=s)  # the same buckets, downsampled from raw points
        assert ref.attrs["resolution"]["source"] == "downsample"
        assert np.allclose(df["min"], ref["min"]) and np.allclose(df["max"], ref["max"])
        assert np.allclose(df["value"], ref["value"]) and df["count"].tolist() == ref["count"].tolist()
        assert df["nonfinite"].sum() == ref["nonfinite"].sum() == 1
    finally:
        owner.command("TRUNCATE TABLE metric_rollups")


def test_fleet_finds_running_runs_and_stragglers(s):
    f = q.fleet(settings=s)
    assert f["active"]["run_id"].tolist() == ["r-short"]
    assert f["lost"].empty
    st = f["stragglers"]
    assert st[["run_id", "rank", "step", "lead_step"]].values.tolist() == [["r-short", 1, 199, 299]]
    # no processor covers r-short here: the processors' rule (step time over 1.5x the ranks' median), on raw points
    assert st["ratio"].iloc[0] == pytest.approx(1.6) and st["source"].tolist() == ["points"]
    assert f["active"]["source"].tolist() == ["points"]
    assert f["throughput"]["points_per_second"].sum() > 0
    lost = q.fleet(lost_after_seconds=-1, settings=s)["lost"]
    assert lost["run_id"].tolist() == ["r-short"]
    assert q.fleet(straggler_factor=2.0, settings=s)["stragglers"].empty  # 0.04 s/step is 1.6x the median


def _run_summary(owner, status: str, version: int) -> None:
    """The processors' ``run_summaries`` row for r-short (what processors/core/lifecycle.py emits)."""
    now = pd.Timestamp.now(tz="UTC")
    owner.insert(
        "run_summaries",
        [["r-short", "default", "alpha", status, now, None, 3.0, now, now, 500, 2, 2, 0, now, version]],
        column_names=list(spec("run_summaries").columns),
    )


def test_fleet_reads_the_processors_verdicts_where_they_cover_a_run(s, query_store):
    owner = query_store.owner
    try:
        _run_summary(owner, "Running", 1)
        f = q.fleet(lost_after_seconds=-1, straggler_factor=1.01, settings=s)
        # the processors say Running and raised no straggler alert: the raw points get no second say
        assert f["active"]["source"].tolist() == ["processors"] and f["lost"].empty and f["stragglers"].empty
        owner.insert(
            "alerts",
            [["r-short", "alpha", "", 1, 150, pd.Timestamp.now(tz="UTC"), "straggler", 4.0, 1.5, "rank 1 is slow"]],
            column_names=list(spec("alerts").columns),
        )
        st = q.fleet(settings=s)["stragglers"]
        assert st[["run_id", "rank", "step", "lead_step", "behind", "ratio", "source"]].values.tolist() == [
            ["r-short", 1, 199, 299, 100, 4.0, "processors"]
        ]
        _run_summary(owner, "Lost", 2)
        lost = q.fleet(lost_after_seconds=1e9, settings=s)["lost"]
        assert lost["run_id"].tolist() == ["r-short"] and lost["source"].tolist() == ["processors"]
    finally:
        owner.command("TRUNCATE TABLE run_summaries")
        owner.command("TRUNCATE TABLE alerts")


def test_sql_binds_parameters(s):
    df = q.sql("SELECT count() AS n FROM metric_points WHERE run_id = {r:String}", {"r": "r-other"}, settings=s)
    assert df["n"].iloc[0] == 50


def test_store_not_running_says_how_to_start_it(tmp_path):
    dead = Settings.build(home=tmp_path, http_port=1)
    with pytest.raises(StoreUnavailable, match="fleetlog up"):
        q.runs(settings=dead)
    with pytest.raises(StoreUnavailable):
        connect("http://127.0.0.1:1")


def _kept_summary(
    run_id: str, metric: str, *, count: int, last: float, first_step: int, last_step: int
) -> pd.DataFrame:
    """One row of the processors' ``metric_summaries`` (rank 0)."""
    stamp = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "run_id": [run_id],
            "metric": [metric],
            "rank": np.uint32(0),
            "count": np.uint64(count),
            "nonfinite": np.uint64(1),
            "sum": 1.0,
            "min": 0.01,
            "min_step": np.int64(last_step),
            "max": 1.0,
            "max_step": np.int64(first_step),
            "first": 1.0,
            "first_step": np.int64(first_step),
            "last": last,
            "last_step": np.int64(last_step),
            "first_ts": stamp,
            "last_ts": stamp,
            "version": np.uint64(1),
        }
    )


def test_summaries_read_the_processors_table_for_the_runs_it_covers(s, query_store):
    owner = query_store.owner
    # A distinctive last value shows which source answered.
    owner.insert_df(
        "metric_summaries", _kept_summary("r-long", "loss", count=20_000, last=42.0, first_step=0, last_step=19_999)
    )
    try:
        both = q.summaries(["r-long", "r-other"], ["loss"], settings=s).set_index("run_id")
        assert both.loc["r-long", "last"] == 42.0 and both.loc["r-long", "count"] == 20_000
        assert both.loc["r-long", "min"] == 0.01 and both.loc["r-long", "nonfinite"] == 1
        assert both.loc["r-other", "count"] == 50 and both.loc["r-other", "last"] == 3.0  # not kept: raw points
        assert list(both.reset_index().columns) == list(q.summaries(["r-other"], settings=s).columns)
        raw = q.summaries(["r-long"], ["loss"], source="raw", settings=s).iloc[0]
        assert raw["last"] == pytest.approx(1 / 20.999) and raw["count"] == 20_000
        # "acc" is not kept for r-long: that run is read raw, all of it
        mixed = q.summaries(["r-long"], ["loss", "acc"], settings=s).set_index("metric")
        assert mixed.loc["loss", "last"] == pytest.approx(1 / 20.999) and mixed.loc["acc", "count"] == 20_000
        table = q.runs(metrics=["loss"], order_by="run_id", settings=s).set_index("run_id")
        assert table.loc["r-long", "loss.last"] == 42.0 and table.loc["r-other", "loss.last"] == 3.0
        with pytest.raises(ValueError, match="source"):
            q.summaries(["r-long"], source="cache", settings=s)
    finally:
        owner.command("TRUNCATE TABLE metric_summaries")


def test_chart_takes_its_extent_from_summaries_and_skips_the_raw_tail_when_rollups_cover_it(s, query_store):
    owner = query_store.owner
    scanned = q.metric("r-long", "loss", settings=s)
    assert scanned.attrs["resolution"]["extent"] == "points"
    owner.insert_df(
        "metric_summaries", _kept_summary("r-long", "loss", count=20_000, last=0.05, first_step=0, last_step=19_999)
    )
    try:
        kept = q.metric("r-long", "loss", settings=s)
        res = kept.attrs["resolution"]
        assert res["extent"] == "summaries" and res["source"] == "downsample" and res["bucket"] == 20
        pd.testing.assert_frame_equal(kept, scanned)
        # r-other has no summary: its length is scanned from its points
        assert q.metric(["r-long", "r-other"], "loss", settings=s).attrs["resolution"]["extent"] == "points"
        assert q.metric("r-long", "loss", step_range=(0, 999), settings=s).attrs["resolution"]["extent"] == "points"
        raw = q.metric("r-long", "loss", resolution="raw", settings=s)
        owner.insert_df("metric_rollups", _rollup_rows(raw, until=19_999))
        whole = q.metric("r-long", "loss", settings=s)
        res = whole.attrs["resolution"]
        assert res["source"] == "rollup" and res["extent"] == "summaries" and res["rollup_resolution"] == 10
        assert whole["count"].tolist() == scanned["count"].tolist()
        assert np.allclose(whole["value"], scanned["value"]) and np.allclose(whole["max"], scanned["max"])
        # A rollup behind the summary is completed from raw points, as before
        owner.command("TRUNCATE TABLE metric_rollups")
        owner.insert_df("metric_rollups", _rollup_rows(raw, until=14_999))
        lagging = q.metric("r-long", "loss", settings=s)
        assert lagging.attrs["resolution"]["source"] == "rollup" and lagging["count"].sum() == 20_000
        assert np.allclose(lagging["value"], scanned["value"])
    finally:
        owner.command("TRUNCATE TABLE metric_summaries")
        owner.command("TRUNCATE TABLE metric_rollups")


def _rollup_rows(raw: pd.DataFrame, *, until: int) -> pd.DataFrame:
    """Rollups at 10 steps of ``raw`` up to step ``until``, in the processors' shape."""
    raw = raw[raw["step"] <= until]
    g = raw.assign(b=raw["step"] // 10).groupby("b")
    stamp = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "run_id": "r-long",
            "metric": "loss",
            "rank": np.uint32(0),
            "resolution": np.uint32(10),
            "bucket": g.size().index.astype(np.int64),
            "count": g.size().to_numpy().astype(np.uint64),
            "nonfinite": (g.size() - g["value"].count()).to_numpy().astype(np.uint64),
            "sum": g["value"].sum().to_numpy(),
            "min": g["value"].min().to_numpy(),
            "min_step": g["step"].min().to_numpy(),
            "max": g["value"].max().to_numpy(),
            "max_step": g["step"].min().to_numpy(),
            "first": g["value"].first().to_numpy(),
            "first_step": g["step"].min().to_numpy(),
            "last": g["value"].last().to_numpy(),
            "last_step": g["step"].max().to_numpy(),
            "first_ts": stamp,
            "last_ts": stamp,
            "version": np.uint64(1),
        }
    )
