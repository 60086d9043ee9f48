"""ScriptRunConfig + submit: the script logs through get_context(), output is captured, exit codes decide."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack

TRAIN = """
import os
import sys
import fleetlog

run = fleetlog.Run.get_context()
print("training", run.id, flush=True)
for i in range(5):
    run.log("loss", 1.0 / (i + 1))
print("to stderr", file=sys.stderr, flush=True)
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "fail":
    raise RuntimeError("diverged at step 5")
if mode == "kill":
    import os, signal
    run.flush()
    os.kill(os.getpid(), signal.SIGKILL)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def script_settings(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = Settings.build(
        home=tmp_path_factory.mktemp("scripts"),
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"s{uuid.uuid4().hex[:10]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        telemetry_interval_seconds=0,
    )
    stack = LocalStack(s)
    stack.start(SINK)
    yield s
    stack.stop(SINK)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    return tmp_path


def logs_of(settings: Settings, run_id: str):
    return query.sql(
        "SELECT stream, message FROM run_logs WHERE run_id = {r:String} ORDER BY ts, seq",
        {"r": run_id},
        settings=settings,
    )


def test_submitted_script_logs_into_the_run_and_its_output_is_captured(script_settings, source, capsys):
    exp = fleetlog.Experiment("scripts", settings=script_settings)
    run = exp.submit(fleetlog.ScriptRunConfig(source_directory=source, script="train.py"), show_output=True)
    details = run.wait_for_completion(show_output=True)
    assert details == {"runId": run.id, "status": "Completed", "exitCode": 0}
    assert f"training {run.id}" in capsys.readouterr().out  # streamed live

    def landed():
        assert run.get_status() == "Completed"
        assert run.get_metrics("loss") == {"loss": [1.0, 0.5, 1 / 3, 0.25, 0.2]}
        logs = logs_of(script_settings, run.id)
        assert ("stdout", f"training {run.id}") in set(zip(logs["stream"], logs["message"], strict=True))
        assert ("stderr", "to stderr") in set(zip(logs["stream"], logs["message"], strict=True))
        assert "done" in logs["message"].tolist()
        assert run.get_file_names() == ["outputs/model.txt"]  # the script's ./outputs, kept with the run

    eventually(landed)
    exp.close()


@pytest.mark.parametrize(("mode", "reason"), [("fail", "exit code 1"), ("kill", "killed by signal SIGKILL")])
def test_a_failing_or_killed_script_fails_the_run_with_its_output_tail(script_settings, source, mode, reason):
    exp = fleetlog.Experiment("scripts", settings=script_settings)
    run = exp.submit(fleetlog.ScriptRunConfig(source_directory=source, script="train.py", arguments=[mode]))
    with pytest.raises(fleetlog.RunFailed, match=reason) as err:
        run.wait_for_completion()
    if mode == "fail":
        assert "RuntimeError: diverged at step 5" in str(err.value)

    def failed():
        d = run.get_details()
        assert d["status"] == "Failed" and reason in d["error"]["message"]
        assert run.get_metrics("loss")["loss"][:5] == [1.0, 0.5, 1 / 3, 0.25, 0.2]

    eventually(failed)
    again = exp.submit(fleetlog.ScriptRunConfig(source_directory=source, script="train.py", arguments=[mode]))
    assert again.wait_for_completion(raise_on_error=False)["status"] == "Failed"
    exp.close()


def test_submit_config_errors_are_clear(source):
    with pytest.raises(FileNotFoundError, match="no script"):
        fleetlog.ScriptRunConfig(source_directory=source, script="missing.py")
    with pytest.raises(ValueError, match="needs script"):
        fleetlog.ScriptRunConfig(source_directory=source)


def test_cli_submit_streams_output_and_returns_the_exit_code(script_settings, source):
    env = {
        **__import__("os").environ,
        "FLEETLOG_HOME": str(script_settings.home),
        "FLEETLOG_KAFKA_BOOTSTRAP": script_settings.kafka.bootstrap,
        "FLEETLOG_TOPIC_PREFIX": script_settings.topics.prefix,
        "FLEETLOG_HTTP_PORT": str(script_settings.store.http_port),
        "FLEETLOG_TELEMETRY_INTERVAL_SECONDS": "0",
    }
    ok = subprocess.run(
        [sys.executable, "-m", "fleetlog", "submit", "train.py", "--experiment", "cli"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "training" in ok.stdout and "Completed" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fleetlog", "submit", "train.py", "--", "fail"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "Failed" in bad.stdout and "diverged" in bad.stderr
