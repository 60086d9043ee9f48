"""What a script did through the SDK holds at once (issue 12), through the real broker and sink.

- Files: ``log_image(path=)`` and ``upload_file`` take the content before returning, so a
  temporary directory deleted (or a checkpoint rewritten) right after the call still
  lands as it was.  Before, the upload thread opened the path later: FileNotFoundError.
- Read-your-writes: after ``complete()``, ``fail()``, ``cancel()`` or
  ``wait_for_completion()`` returns, ``get_status()`` and ``get_details()`` on that handle
  say so before the store does.  The sink (which also serves the embedded store) is
  stopped for that moment, so the store lags for certain -- before, both calls raised
  or said Running; once the sink runs again the store agrees.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

from fleetlog.producers._artifacts import IN_MEMORY_BYTES
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.stack import SINK, LocalStack

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200  # the SDK checks the suffix, the store keeps the bytes


def stored_status(settings: Settings, run_ids: list[str]) -> dict[str, str]:
    df = query.sql(
        "SELECT run_id, status FROM runs FINAL WHERE run_id IN {ids:Array(String)}", {"ids": run_ids}, settings=settings
    )
    return dict(zip(df["run_id"], df["status"], strict=True))


def test_files_deleted_or_rewritten_right_after_the_call_land_as_they_were(stack, settings: Settings, tmp_path):
    exp = fleetlog.Experiment("temp-files", settings=settings)
    run = exp.start_logging(run_id="temp-files-1", telemetry=False)
    big_before = os.urandom(IN_MEMORY_BYTES + 4096)  # big enough to be staged, not read into memory
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "plot.png").write_bytes(PNG)
        (folder / "notes.txt").write_text("kept")
        (folder / "ckpt.pt").write_bytes(big_before)
        run.log_image("plot", path=folder / "plot.png")
        run.upload_file("notes.txt", folder / "notes.txt")
        run.upload_file("ckpt.pt", folder / "ckpt.pt")
        (folder / "ckpt.pt").write_bytes(b"the next epoch")  # a checkpoint saved again to the same path
    assert not Path(d).exists()
    run.complete()

    def landed() -> None:
        assert sorted(run.get_file_names()) == ["ckpt.pt", "notes.txt"]
        assert run.get_metrics("plot")["plot"].endswith("images/plot.png")

    eventually(landed, timeout=60)
    for name, expected in (("notes.txt", b"kept"), ("ckpt.pt", big_before), ("plot", PNG)):
        assert run.download_file(name, tmp_path / Path(name).name).read_bytes() == expected
    assert not any((settings.home / "staging").iterdir())  # staged copies are removed once uploaded
    exp.close()


def test_a_handle_reads_its_own_final_status_before_the_store_has_it(
    stack: LocalStack, settings: Settings, tmp_path: Path
):
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            import os, time
            import fleetlog
            fleetlog.Run.get_context().log("loss", 0.5)
            while not os.path.exists("stop"):  # runs until the test says stop: polls for the file
                time.sleep(0.05)
            """
        )
    )
    exp = fleetlog.Experiment("read-your-writes", settings=settings)
    completed, failed, canceled = (exp.start_logging(run_id=f"ryw-{k}", telemetry=False) for k in ("c", "f", "x"))
    submitted = exp.submit(fleetlog.ScriptRunConfig(source_directory=tmp_path, script="train.py"))
    runs = [completed, failed, canceled, submitted]
    ids = [r.id for r in runs]
    eventually(lambda: stored_status(settings, ids) == dict.fromkeys(ids, "Running"), timeout=60)

    stack.stop(SINK)  # from here on the store cannot learn anything
    completed.complete()
    failed.fail(ValueError("diverged"))
    canceled.cancel()
    (tmp_path / "stop").touch()  # the script ends, exit code 0
    submitted.wait_for_completion()
    expected = {completed.id: "Completed", failed.id: "Failed", canceled.id: "Canceled", submitted.id: "Completed"}
    for run in runs:
        assert run.get_status() == expected[run.id]
        details = run.get_details()
        assert details["status"] == expected[run.id] and details["endTimeUtc"] >= details["startTimeUtc"]
    assert failed.get_details()["error"]["type"] == "ValueError"
    assert "diverged" in failed.get_details()["error"]["message"]

    stack.start(SINK)
    eventually(lambda: stored_status(settings, ids) == expected, timeout=60)
    assert [r.get_status() for r in runs] == [expected[i] for i in ids]
    exp.close()
