"""The dashboard's JSON API and its token gate, over the synthetic store (tests/unit/conftest.py)."""

from __future__ import annotations

import time
import warnings

import pandas as pd
import pytest

with warnings.catch_warnings():  # starlette 1.x nudges from httpx towards httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from fleetlog.errors import ConfigError
from fleetlog.ui import app as ui_app
from fleetlog.ui.app import create_app
from fleetlog.ui.server import check_binding


@pytest.fixture(scope="module")
def http(query_store):
    with TestClient(create_app(query_store.settings), base_url="http://127.0.0.1") as client:
        yield client


def test_health_experiments_and_runs(http):
    assert http.get("/api/health").json() == {"ok": True}
    exps = {e["experiment"]: e for e in http.get("/api/experiments").json()["experiments"]}
    assert exps["alpha"]["runs"] == 2
    body = http.get("/api/runs").json()
    assert {r["run_id"] for r in body["runs"]} == {"r-long", "r-short", "r-other"}
    assert body["params"] == ["layers", "lr", "opt"] and body["tags"] == ["fast", "suite"]
    long = next(r for r in body["runs"] if r["run_id"] == "r-long")
    assert long["params.lr"] == 0.1 and long["start_time"].endswith("+00:00")
    assert [r["run_id"] for r in http.get("/api/runs", params={"status": "Failed"}).json()["runs"]] == ["r-other"]
    assert [r["run_id"] for r in http.get("/api/runs", params={"q": "SHORT"}).json()["runs"]] == ["r-short"]
    two = http.get("/api/runs", params=[("experiment", "alpha"), ("order", "run_id"), ("limit", "1")]).json()
    assert [r["run_id"] for r in two["runs"]] == ["r-long"]


def test_run_detail_and_errors(http):
    body = http.get("/api/runs/r-long").json()
    assert body["status"] == "Completed" and body["params"]["layers"] == 12 and body["tags"] == {"suite": "unit"}
    metrics = {m["metric"]: m for m in body["metrics"]}
    assert metrics["loss"]["count"] == 20_000 and metrics["loss"]["nonfinite"] == 1
    missing = http.get("/api/runs/nope")
    assert missing.status_code == 404 and "fleetlog runs" in missing.json()["error"]
    assert http.get("/api/series", params={"metric": "loss"}).status_code == 400
    assert http.get("/api/series", params={"run": "r-long", "metric": "loss", "start": "x"}).status_code == 400


def test_series_resolution_envelope_and_zoom(http):
    body = http.get("/api/series", params={"run": "r-long", "metric": "loss", "points": 500}).json()
    assert body["resolution"]["source"] == "downsample" and body["resolution"]["bucket"] == 50
    (s,) = body["series"]
    assert len(s["step"]) == 400 and s["nonfinite"] == 1
    assert all(lo <= v <= hi for lo, v, hi in zip(s["min"], s["value"], s["max"], strict=True))
    zoom = http.get("/api/series", params={"run": "r-long", "metric": "loss", "start": 100, "end": 399}).json()
    assert zoom["resolution"]["source"] == "raw" and zoom["series"][0]["step"] == list(range(100, 400))
    nan = http.get("/api/series", params={"run": "r-long", "metric": "loss", "start": 5000, "end": 5001}).json()
    assert nan["series"][0]["value"][0] is None  # NaN travels as null
    ranks = http.get("/api/series", params=[("run", "r-short"), ("run", "r-long"), ("metric", "loss")]).json()
    assert [(s["run_id"], s["rank"]) for s in ranks["series"]] == [("r-long", 0), ("r-short", 0), ("r-short", 1)]
    one = http.get("/api/series", params={"run": "r-short", "metric": "loss", "rank": 1}).json()
    assert [s["rank"] for s in one["series"]] == [1]


def test_compare_and_metric_names(http):
    body = http.get("/api/compare", params=[("run", "r-long"), ("run", "r-short")]).json()
    assert [r["run_id"] for r in body["runs"]] == ["r-long", "r-short"]
    assert "params.lr" in body["columns"] and "params.layers" not in body["columns"]
    assert body["metrics"] == ["acc", "loss"] and body["chosen"] == ["acc", "loss"]
    assert http.get("/api/metrics", params={"run": "r-short"}).json() == {"metrics": ["loss"]}


def test_logs_tables_alerts_and_fleet(http, query_store):
    stamp = pd.Timestamp.now(tz="UTC")
    query_store.owner.insert(
        "run_logs",
        [
            ["r-short", stamp + pd.Timedelta(milliseconds=i), 0, "stderr", "WARNING", "x", f"warn {i}", i]
            for i in range(3)
        ],
        column_names=["run_id", "ts", "rank", "stream", "level", "logger", "message", "seq"],
    )
    lines = http.get("/api/runs/r-short/logs").json()
    assert lines["available"] and [x["message"] for x in lines["lines"]] == ["warn 0", "warn 1", "warn 2"]
    later = http.get("/api/runs/r-short/logs", params={"since": lines["lines"][1]["ts"]}).json()
    assert [x["message"] for x in later["lines"]] == ["warn 2"]
    assert http.get("/api/runs/r-short/alerts").json() == {"available": True, "alerts": []}
    assert http.get("/api/runs/r-short/tables").json()["tables"] == []
    fleet = http.get("/api/fleet").json()
    assert [r["run_id"] for r in fleet["active"]] == ["r-short"]
    assert fleet["stragglers"][0]["rank"] == 1 and fleet["lost"] == []


def test_artifacts_inline_and_from_the_artifact_store(http, query_store, tmp_path):
    root = query_store.settings.home / "artifacts"
    (root / "r-long").mkdir(parents=True, exist_ok=True)
    (root / "r-long" / "model.bin").write_bytes(b"weights")
    stamp = pd.Timestamp.now(tz="UTC")
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    query_store.owner.insert(
        "run_artifacts",
        [
            ["r-long", "img", "image", 4, "", "", "image/png", "", b"\x89PNG", stamp],
            ["r-long", "model.bin", "file", 7, "", (root / "r-long" / "model.bin").as_uri(), "", "", b"", stamp],
            ["r-long", "evil", "file", 2, "", outside.as_uri(), "", "", b"", stamp],
        ],
        column_names=["run_id", "name", "kind", "size", "sha256", "uri", "content_type", "description", "inline", "ts"],
    )
    listing = http.get("/api/runs/r-long/artifacts").json()["artifacts"]
    assert sorted(a["name"] for a in listing) == ["evil", "img", "model.bin"]
    img = http.get("/api/runs/r-long/artifact/img")
    assert img.status_code == 200 and img.content == b"\x89PNG" and img.headers["content-type"] == "image/png"
    assert http.get("/api/runs/r-long/artifact/model.bin").content == b"weights"
    assert http.get("/api/runs/r-long/artifact/evil").status_code == 404  # outside FLEETLOG_ARTIFACTS_URL
    assert http.get("/api/runs/r-long/artifact/none").status_code == 404


def test_index_serves_the_built_page_or_says_how_to_build_it(http, monkeypatch, tmp_path):
    monkeypatch.setattr(ui_app, "DIST", tmp_path)
    page = http.get("/")
    assert page.status_code == 503 and "make ui" in page.text
    (tmp_path / "app.js").write_text("// built")
    page = http.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text


def test_token_gate(query_store):
    app = create_app(query_store.settings, token="s3cret")
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = client.get("/", params={"token": "s3cret", "x": "1"})
        assert first.status_code == 307 and first.headers["location"] == "/?x=1"
        assert "fleetlog_token" in first.headers["set-cookie"] and "HttpOnly" in first.headers["set-cookie"]
        assert client.get("/api/health").status_code == 200  # the cookie now carries it


def test_binding_beyond_loopback_needs_a_token(query_store):
    check_binding(query_store.settings)
    open_host = query_store.settings.replace(ui_host="0.0.0.0")
    with pytest.raises(ConfigError, match="FLEETLOG_UI_TOKEN"):
        check_binding(open_host)
    check_binding(open_host.replace(ui_token="t"))


def test_series_latency_for_a_20k_point_series(http):
    """A chart request stays interactive: the median of a few requests is well under a second."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert http.get("/api/series", params={"run": "r-long", "metric": "loss"}).status_code == 200
        times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 1.0
