"""The Azure-style Run API end to end: every log type, files, children, reading back."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack


@pytest.fixture(scope="module")
def api_settings(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("api")
    s = Settings.build(
        home=home,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"a{uuid.uuid4().hex[:10]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        heartbeat_interval_seconds=0.5,
        telemetry_interval_seconds=0.2,
        outputs_dir=str(home / "outputs"),
    )
    stack = LocalStack(s)
    stack.start(SINK)
    yield s
    stack.stop(SINK)


def test_every_log_type_lands_and_reads_back_in_azure_shape(api_settings, tmp_path):
    exp = fleetlog.Experiment("api-types", settings=api_settings)
    (tmp_path / "model.bin").write_bytes(b"\x00weights" * 1000)
    (api_settings.home / "outputs").mkdir()
    (api_settings.home / "outputs" / "report.txt").write_text("written by the script")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with exp.start_logging(display_name="all types") as run:
        for v in (0.9, 0.5, 0.25):
            run.log("loss", v)
        run.log("final_acc", 0.97)
        run.log_list("accuracies", [0.5, 0.7, 0.9])
        run.log_row("per_epoch", epoch=1, loss=0.5)
        run.log_row("per_epoch", epoch=2, loss=0.3, lr=0.01)
        run.log_table("table", {"x": [1, 2, 3], "y": [0.1, 0.2, 0.3]})
        run.log_confusion_matrix("cm", {"data": {"class_labels": ["a", "b"], "matrix": [[5, 1], [2, 7]]}})
        run.log_residuals("res", {"data": {"bin_edges": [0, 1, 2], "bin_counts": [3, 4]}})
        run.log_image("curve", plot=fig)
        run.upload_file("weights/model.bin", tmp_path / "model.bin")
        run.tag("stage", "dev")
        run.set_tags({"team": "vision", "tmp": "x"})
        run.remove_tags(["tmp"])
        run.add_properties({"owner": "ana"})
        run.log_params({"opt": {"lr": 0.1, "name": "adam"}, "epochs": 2})
        run.description = "a run that logs everything"
        child = run.child_run("fold-0")
        child.log("fold_loss", 0.4)
        child.complete()

    def landed():
        assert run.get_status() == "Completed"
        metrics = run.get_metrics()
        assert metrics["loss"] == [0.9, 0.5, 0.25] and metrics["final_acc"] == 0.97
        assert metrics["accuracies"] == [0.5, 0.7, 0.9]
        assert metrics["per_epoch"] == {"epoch": [1, 2], "loss": [0.5, 0.3], "lr": [None, 0.01]}
        assert metrics["table"] == {"x": [1, 2, 3], "y": [0.1, 0.2, 0.3]}
        assert metrics["cm"]["data"]["matrix"] == [[5, 1], [2, 7]]
        assert metrics["res"]["schema_type"] == "residuals"
        assert metrics["curve"].endswith("images/curve.png")
        assert set(run.get_file_names()) == {"weights/model.bin", "outputs/report.txt"}
        return metrics

    eventually(landed)
    assert run.get_tags() == {"stage": "dev", "team": "vision"}
    assert run.get_properties() == {"owner": "ana"}
    assert run.get_params() == {"opt.lr": 0.1, "opt.name": "adam", "epochs": 2}
    details = run.get_details()
    assert details["displayName"] == "all types" and details["description"] == "a run that logs everything"
    out = run.download_file("weights/model.bin", tmp_path / "copy.bin")
    assert out.read_bytes() == (tmp_path / "model.bin").read_bytes()
    image = query.sql(
        "SELECT size, length(inline) AS inline FROM run_artifacts FINAL WHERE name = 'curve'", settings=api_settings
    )
    assert image["inline"].iloc[0] == image["size"].iloc[0] > 1000  # small images also travel inline
    assert [c.id for c in run.get_children()] == [child.id]

    def recursive():
        assert run.get_metrics(recursive=True) == {run.id: run.get_metrics(), child.id: {"fold_loss": 0.4}}

    eventually(recursive)
    assert child.get_details()["parentRunId"] == run.id
    assert {r.id for r in exp.get_runs()} == {run.id, child.id}
    again = fleetlog.Run.get(run.id, settings=api_settings)
    assert again.status == "Completed" and again.display_name == "all types"
    hb = query.sql(
        "SELECT count() AS n FROM run_heartbeats WHERE run_id = {r:String}", {"r": run.id}, settings=api_settings
    )
    assert hb["n"].iloc[0] >= 1
    exp.close()


def test_failures_keep_the_traceback_and_resume_continues_steps(api_settings):
    exp = fleetlog.Experiment("api-life", settings=api_settings)
    with pytest.raises(ZeroDivisionError), exp.start_logging() as run:
        run.log("x", 1.0)
        run.log("x", 2.0)
        1 / 0  # noqa: B018

    def failed():
        d = run.get_details()
        assert d["status"] == "Failed" and d["error"]["type"] == "ZeroDivisionError"
        assert "1 / 0" in d["error"]["traceback"]
        assert run.get_metrics("x") == {"x": [1.0, 2.0]}

    eventually(failed)
    resumed = exp.start_logging(run_id=run.id)
    resumed.log("x", 3.0)
    resumed.complete()

    def resumed_landed():
        assert resumed.get_metrics("x") == {"x": [1.0, 2.0, 3.0]}
        steps = query.sql(
            "SELECT step FROM metric_points WHERE run_id = {r:String} AND metric = 'x' ORDER BY step",
            {"r": run.id},
            settings=api_settings,
        )
        assert steps["step"].tolist() == [0, 1, 2]
        assert resumed.get_status() == "Completed"

    eventually(resumed_landed)
    exp.close()


def test_python_logging_and_telemetry_land_in_the_run(api_settings):
    exp = fleetlog.Experiment("api-logs", settings=api_settings)
    run = exp.start_logging()
    logger = logging.getLogger("train")
    run.capture_logging("train")
    logger.info("epoch %d done", 1)
    try:
        raise ValueError("bad batch")
    except ValueError:
        logger.exception("step failed")

    def sampled() -> None:  # the telemetry sampler stops with the run: let its samples land first
        assert {"sys/cpu_percent", "sys/memory_used_bytes"} <= set(run.get_metrics(include_system=True))
        assert not [m for m in run.get_metrics() if m.startswith("sys/")]  # what the script logged, by default

    eventually(sampled)
    run.complete()

    def landed():
        logs = query.sql(
            "SELECT level, logger, message FROM run_logs WHERE run_id = {r:String} ORDER BY ts",
            {"r": run.id},
            settings=api_settings,
        )
        assert logs["message"].tolist()[0] == "epoch 1 done"
        assert logs["level"].tolist() == ["INFO", "ERROR"] and "ValueError: bad batch" in logs["message"].iloc[1]
        telemetry = run.get_metrics(include_system=True)
        assert "sys/cpu_percent" in telemetry and "sys/memory_used_bytes" in telemetry

    eventually(landed)
    exp.close()
    assert json.loads(json.dumps(run.get_tags())) == {}
