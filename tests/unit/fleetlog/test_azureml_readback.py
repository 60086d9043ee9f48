"""Reading back what Azure code logs: string metrics as strings, telemetry only when asked,
and ``RunDetails(run).show()`` as the live card -- against the in-process store."""

from __future__ import annotations

import json
import sys
import types
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fleetlog.azureml.widgets import RunDetails
from fleetlog.query import handle, records


@pytest.fixture(scope="module")
def text_run(query_store) -> str:
    """A run with a string metric logged twice, one logged once, a number and fleetlog's telemetry."""
    run_id = "r-text"
    ts = pd.Timestamp.now(tz="UTC")
    rows = [
        (run_id, "Category", "metric", "", json.dumps("Red"), 1, None, ts),
        (run_id, "Category", "metric", "", json.dumps("Blue"), 2, 7, ts),
        (run_id, "Phase", "metric", "", json.dumps("warm-up"), 3, None, ts),
    ]
    query_store.owner.insert(
        "run_records", rows, column_names=["run_id", "name", "type", "description", "data", "idx", "step", "ts"]
    )
    points = pd.DataFrame(
        {
            "run_id": run_id,
            "metric": ["loss", "sys/cpu_percent", "sys/cpu_percent"],
            "rank": np.zeros(3, np.uint32),
            "step": np.array([0, 0, 1], np.int64),
            "ts": [ts] * 3,
            "value": [0.5, 10.0, 12.0],
        }
    )
    query_store.owner.insert_df("metric_points", points)
    return run_id


def test_string_metrics_read_back_as_strings_without_telemetry(query_store, text_run):
    metrics = handle.run_metrics(text_run, query_store.settings)
    assert metrics == {"loss": 0.5, "Category": ["Red", "Blue"], "Phase": "warm-up"}
    everything = handle.run_metrics(text_run, query_store.settings, include_system=True)
    assert everything["sys/cpu_percent"] == [10.0, 12.0]
    asked = handle.run_metrics(text_run, query_store.settings, name="sys/cpu_percent")
    assert asked == {"sys/cpu_percent": [10.0, 12.0]}  # asking for it by name is asking for it
    assert handle.run_metrics(text_run, query_store.settings, name="Phase") == {"Phase": "warm-up"}


def test_string_metric_as_a_table(query_store, text_run):
    frame = records.tables(text_run, "Category", settings=query_store.settings)
    assert frame["Category"].tolist() == ["Red", "Blue"]


def test_run_details_show_displays_and_follows_the_card(query_store, monkeypatch):
    shown: list[str] = []
    fake = types.ModuleType("IPython.display")
    fake.HTML = lambda text: text
    fake.display = lambda obj, display_id=False: shown.append(obj) or SimpleNamespace(update=shown.append)
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    ended = SimpleNamespace(id="r-long", experiment=SimpleNamespace(settings=query_store.settings))
    details = RunDetails(ended)
    assert details.show() is None  # a finished run: shown once, nothing to follow
    assert "long one" in shown[0] and "Completed" in shown[0]
    assert details.get_widget_data() == details._repr_html_() == shown[0]
    running = SimpleNamespace(id="r-short", experiment=SimpleNamespace(settings=query_store.settings))
    thread = RunDetails(running).show(refresh_seconds=0.05)
    assert thread is not None and thread.is_alive()
    thread.stop.set()
    thread.join(5)


def test_dashboard_runs_table_shows_string_metrics(query_store):
    import warnings

    with warnings.catch_warnings():  # starlette 1.x nudges from httpx towards httpx2; httpx works
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from fleetlog.ui.app import create_app

    ts = pd.Timestamp.now(tz="UTC")
    query_store.owner.insert(
        "run_records",
        [("r-other", "Category", "metric", "", json.dumps("Red"), 99, None, ts)],
        column_names=["run_id", "name", "type", "description", "data", "idx", "step", "ts"],
    )
    with TestClient(create_app(query_store.settings), base_url="http://127.0.0.1") as client:
        body = client.get("/api/runs").json()
    assert "Category" in body["texts"]
    by_id = {r["run_id"]: r for r in body["runs"]}
    assert by_id["r-other"]["text.Category"] == "Red" and by_id["r-long"]["text.Category"] is None
