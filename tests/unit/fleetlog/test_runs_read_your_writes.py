"""Read-your-writes on a ``fleetlog.Run`` handle, with the store's answer fixed in place.

The integration test (tests/security/test_sdk_handles.py) covers a store that cannot know
yet; this one covers the other lag: the store answers, and still says Running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fleetlog
from fleetlog.config import Settings
from fleetlog.errors import RunNotFound


class LaggingStore:
    """Stands in for the store's ``runs`` row: the run is known, and Running."""

    def __init__(self, run: fleetlog.Run) -> None:
        self.row: dict[str, Any] = {
            "name": run.display_name,
            "description": "",
            "status": "Running",
            "start_time": pd.Timestamp(run.start_time, unit="s"),
            "end_time": pd.Timestamp(0, unit="s"),
            "experiment": run.experiment.name,
            "parent_run_id": "",
            "host": "h",
            "world_size": 1,
            "error_type": "",
            "error_message": "",
            "error_traceback": "",
        }

    def __call__(self) -> dict[str, Any]:
        return dict(self.row)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> fleetlog.Run:
    settings = Settings.build(home=tmp_path, mode="offline", outputs_dir="", telemetry_interval_seconds=0)
    exp = fleetlog.Experiment("ryw", settings=settings)
    monkeypatch.setattr(exp, "_before_start", lambda run: None)  # no resume lookup: there is no store here
    run = exp.start_logging(run_id="ryw-unit", telemetry=False)
    monkeypatch.setattr(run, "_store_record", LaggingStore(run))
    monkeypatch.setattr(run, "_key_values", lambda table: {})
    yield run
    exp.close()


def test_a_running_handle_reads_the_store(run: fleetlog.Run):
    assert run.get_status() == "Running" and run.get_details()["status"] == "Running"


@pytest.mark.parametrize(
    ("end", "status"),
    [("complete", "Completed"), ("cancel", "Canceled"), ("fail", "Failed")],
)
def test_the_handle_that_ended_a_run_reads_its_final_status_while_the_store_lags(run, end, status):
    getattr(run, end)()
    assert run.get_status() == status
    details = run.get_details()
    assert details["status"] == status and details["endTimeUtc"] >= details["startTimeUtc"]


def test_a_failure_reads_back_with_its_error_and_the_store_wins_once_it_has_a_final_status(run):
    run.fail(ValueError("diverged"))
    assert run.get_details()["error"]["type"] == "ValueError"
    run._store_record.row["status"] = "Canceled"  # the store's final word (say, a user canceled it) is kept
    assert run.get_status() == "Canceled"


def test_a_run_the_store_has_never_seen_reads_from_the_handle_only_once_ended(run, monkeypatch):
    def missing() -> dict[str, Any]:
        raise RunNotFound("not yet")

    monkeypatch.setattr(run, "_store_record", missing)
    with pytest.raises(RunNotFound):
        run.get_details()
    run.complete()
    assert run.get_details()["status"] == "Completed" and run.get_status() == "Completed"
