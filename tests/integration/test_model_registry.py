"""The model registry end to end: real broker, real sink, files in the artifact store.

Versions are numbered by the sink (fleetlog.sinks._models); the race test has two processes
register one name at the same moment while the sink is killed (-9) and restarted under them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from polling import wait_for

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.models import Model
from fleetlog.stack import SINK, LocalStack

HERE = Path(__file__).parent


def test_register_list_get_latest_and_download(stack: LocalStack, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(os.urandom(50_000))
    folder = tmp_path / "bundle"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(3_000))
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    exp = fleetlog.Experiment("models", settings=settings)
    with exp.start_logging() as run:
        first = run.register_model("clf", tmp_path / "model.pkl", tags={"area": "mnist"}, description="baseline")
        second = run.register_model(model_name="clf", model_path=str(folder), properties={"acc": 0.9})
        (tmp_path / "model.pkl").unlink()  # copied before register_model returned
    assert (first.name, first.version, first.run_id) == ("clf", 1, run.id)
    assert second.version == 2 and second.properties == {"acc": "0.9"} and first.tags == {"area": "mnist"}
    assert second.url.startswith(settings.sdk.artifacts_url) and "/models/clf/" in second.url

    latest = Model(settings, "clf")
    assert latest.version == 2 and latest.run_id == run.id
    assert [m.version for m in Model.list(settings, name="clf")] == [2, 1]
    assert [m.version for m in Model.list(settings, tags=[["area", "mnist"]])] == [1]

    out = Path(Model(settings, "clf", version=1).download(tmp_path / "got"))
    assert out.name == "model.pkl" and out.stat().st_size == 50_000
    bundle = Path(latest.download(tmp_path / "got"))
    assert (bundle / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert (bundle / "sub" / "vocab.txt").read_text() == "a\nb\n"
    assert query.models(run_id=run.id, settings=settings)["version"].tolist() == [2, 1]


def test_two_processes_racing_get_versions_1_to_10_through_a_sink_killed_midway(
    stack: LocalStack, settings: Settings, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "model_proc.py"), "race", "5", str(go)],
            env=settings.child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        go.touch()

        def stored() -> int:
            return len(query.models("race", settings=settings))

        before = wait_for(lambda: (n := stored()) >= 3 and n, 120, "three registrations to land")
        assert before < 10, "the sink must die while the two are still registering"
        os.kill(stack.pid(SINK), signal.SIGKILL)  # mid-way: the two are still registering
        wait_for(lambda: stack.pid(SINK) is None, 30, "the sink to die")
        stack.start(SINK)
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    returned = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    assert sorted(r["version"] for r in returned) == list(range(1, 11))
    frame = query.models("race", settings=settings)
    assert sorted(frame["version"]) == list(range(1, 11))  # no gaps, no duplicates in the store either
    for r in returned:  # each process got the version its own bytes were stored under
        assert (
            Path(Model(settings, "race", version=r["version"]).download(tmp_path / str(r["version"]))).read_bytes()
            == r["bytes"].encode()
        )
