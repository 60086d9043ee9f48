"""Notebook rendering: a run's card (status, key metrics, sparklines) and the live ``show()``."""

from __future__ import annotations

import sys
import time
import types
from types import SimpleNamespace

from fleetlog.config import Settings
from fleetlog.ui.notebook import card, run_html, show, sparkline_svg


def test_card_shows_status_params_and_sparklines(query_store):
    page = card("r-long", settings=query_store.settings)
    assert "long one" in page and "Completed" in page and "lr=0.1" in page
    assert page.count("<polyline") >= 2 and "loss" in page and "acc" in page
    fake_run = SimpleNamespace(id="r-other", experiment=SimpleNamespace(settings=query_store.settings))
    assert "Failed" in run_html(fake_run)


def test_card_never_raises(query_store, tmp_path):
    assert "no run &#x27;nope&#x27;" in card("nope", settings=query_store.settings)
    assert "fleetlog up" in card("r-long", settings=Settings.build(home=tmp_path, http_port=1))


def test_sparkline_breaks_at_nan():
    svg = sparkline_svg([1.0, 2.0, float("nan"), 3.0, 4.0])
    assert svg.count("<polyline") == 2
    assert "polyline" not in sparkline_svg([1.0])


def test_show_refreshes_a_running_run(query_store, monkeypatch):
    updates = []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    shown = []
    fake = types.ModuleType("IPython.display")
    fake.HTML = lambda text: text
    fake.display = lambda obj, display_id=False: shown.append(obj) or Handle()
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    run = SimpleNamespace(id="r-short", experiment=SimpleNamespace(settings=query_store.settings))
    thread = show(run, refresh_seconds=0.05)
    try:
        deadline = time.monotonic() + 30
        while not updates and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Running" in shown[0] and updates and "short one" in updates[0]
    finally:
        thread.stop.set()
        thread.join(5)
    finished = SimpleNamespace(id="r-long", experiment=SimpleNamespace(settings=query_store.settings))
    assert show(finished) is None  # nothing to follow
