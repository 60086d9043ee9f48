"""Run's call-site validation and lifecycle, with a recording stand-in for the sender."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fleetlog.producers._artifacts import ArtifactStore
from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._sender import Stream
from fleetlog.producers.run import Run

from fleetlog.config import Settings
from fleetlog.events import Envelope, RunStatus, Source


class RecordingSender:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.flushes = 0

    def emit(self, stream, kind, body):
        self.events.append((kind, body))

    def flush(self, timeout):
        self.flushes += 1
        return True


class FakeExperiment:
    name = "e"
    settings = Settings.build(home=Path("/nonexistent"), outputs_dir="")


def make_run(rank: int = 0) -> tuple[Run, RecordingSender]:
    sender = RecordingSender()
    stream = Stream(
        Envelope(kind="metrics", run_id="r1", experiment="e", source=Source(rank=rank)),
        MetricBuffer(capacity=1000, wake_at=500),
    )
    run = Run(
        experiment=FakeExperiment(),
        sender=sender,
        stream=stream,
        artifacts=ArtifactStore("memory://t"),
        display_name="r1",
    )
    return run._start(), sender


class OneElementTensor:
    def __init__(self, v):
        self.v = v

    def numel(self):
        return 1

    def item(self):
        return self.v


def test_numbers_of_every_kind_are_accepted_and_nan_is_kept():
    run, _ = make_run()
    for v in (
        1,
        2.5,
        True,
        np.float32(0.5),
        np.int64(7),
        np.array(3.0),
        np.array([4.0]),
        OneElementTensor(5.0),
        math.nan,
        math.inf,
    ):
        run.log("x", v)
    values = run._metrics.drain().value
    assert values[:8].tolist() == [1.0, 2.5, 1.0, 0.5, 7.0, 3.0, 4.0, 5.0]
    assert math.isnan(values[8]) and values[9] == math.inf


@pytest.mark.parametrize("bad", [None, b"0.5", [1.0, 2.0], np.array([1.0, 2.0]), {"a": 1}])
def test_non_numbers_raise_type_error_naming_the_metric(bad):
    run, _ = make_run()
    with pytest.raises(TypeError, match="'val_loss'"):
        run.log("val_loss", bad)
    assert len(run._metrics) == 0


def test_strings_are_string_metrics_not_points():
    """Azure's ``run.log('Category', 'Red')``: a ``metric`` record, by every logging path."""
    run, sender = make_run()
    run.log(name="Category", value="Red")
    Run.log(run, "Category", "Blue", step=3)  # the class method (the documented slow path)
    run.log_metrics({"Colour": "Green", "x": 1.0})
    records = [(b["name"], b["data"], b["step"]) for kind, b in sender.events if kind == "record"]
    assert records == [("Category", "Red", None), ("Category", "Blue", 3), ("Colour", "Green", None)]
    assert {b["type"] for kind, b in sender.events if kind == "record"} == {"metric"}
    assert run._metrics.drain().value.tolist() == [1.0]


def test_log_list_takes_any_iterable_but_not_text():
    run, sender = make_run()
    run.log_list(name="Fibonacci", value=(i * 2 for i in [0, 1, 1, 2]))
    run.log_list("r", range(3))
    assert [b["data"] for kind, b in sender.events if kind == "record"] == [[0, 2, 2, 4], [0, 1, 2]]
    for bad in ("abc", {"a": 1}, 5):
        with pytest.raises(TypeError, match="expected a list"):
            run.log_list("bad", bad)


def test_bad_steps_and_mappings_raise():
    run, _ = make_run()
    with pytest.raises(TypeError, match="step"):
        run.log("x", 1.0, step=1.5)
    with pytest.raises(TypeError, match="mapping"):
        run.log_metrics([("a", 1.0)])
    run.log("x", 1.0, step=np.int64(4))
    assert run._metrics.drain().step.tolist() == [4]


def test_log_metrics_shares_a_step_or_counts_per_metric():
    run, _ = make_run()
    run.log_metrics({"a": 1.0, "b": 2.0}, step=10)
    run.log_metrics({"a": 1.5})
    out = run._metrics.drain()
    assert list(zip([out.names[i] for i in out.name_idx], out.step.tolist(), strict=True)) == [
        ("a", 10),
        ("b", 10),
        ("a", 11),
    ]


def test_context_manager_completes_or_fails_with_the_traceback():
    run, sender = make_run()
    with run:
        pass
    assert run.status == RunStatus.COMPLETED and sender.flushes == 1
    run2, sender2 = make_run()
    with pytest.raises(ZeroDivisionError), run2:
        1 / 0  # noqa: B018
    kind, body = sender2.events[-1]
    assert kind == "run" and body["status"] == "Failed"
    assert body["error"]["type"] == "ZeroDivisionError" and "1 / 0" in body["error"]["traceback"]
    run2.complete()  # a finished run stays finished
    assert run2.status == RunStatus.FAILED


def test_params_flatten_and_only_rank_zero_writes_run_records():
    run, sender = make_run()
    run.log_params({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "n": math.nan})
    assert sender.events[-1] == ("params", {"opt.lr": 0.1, "opt.betas": "[0.9, 0.99]", "n": "nan"})
    worker, wsender = make_run(rank=3)
    worker.log_params({"a": 1})
    worker.set_tags({"t": "x"})
    worker.complete()
    assert wsender.events == []


def test_images_need_exactly_one_of_path_or_plot(tmp_path):
    run, _ = make_run()
    with pytest.raises(ValueError, match="exactly one"):
        run.log_image("img")
    with pytest.raises(ValueError, match="exactly one"):
        run.log_image("img", path="a.png", plot=object())
    with pytest.raises(ValueError, match="not an image"):
        run.log_image("img", path=tmp_path / "a.txt")
    with pytest.raises(TypeError, match="matplotlib"):
        run.log_image("img", plot=object())


def test_properties_are_immutable_and_tags_can_be_removed():
    run, sender = make_run()
    run.add_properties({"owner": "ana", "seed": 1})
    run.add_properties({"seed": 1})  # the same value again is fine
    with pytest.raises(ValueError, match="cannot change"):
        run.add_properties({"seed": 2})
    run.remove_tags("stage")
    assert sender.events[-1] == ("untag", {"keys": ["stage"]})


def test_files_names_must_stay_inside_the_run(tmp_path):
    run, _ = make_run()
    with pytest.raises(ValueError, match="relative path"):
        run.upload_file("../escape.txt", tmp_path)
    with pytest.raises(FileNotFoundError):
        run.upload_file("x.txt", tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="as many names"):
        run.upload_files(["a"], [])
    with pytest.raises(NotADirectoryError):
        run.upload_folder("out", tmp_path / "nope")
