"""A process that registers models, for the concurrency test: ``python model_proc.py NAME COUNT GO_FILE``.

It opens its run, waits until ``GO_FILE`` exists (so two of them start registering at the same
moment), registers ``COUNT`` versions of ``NAME`` -- each file's bytes name this process and the
index -- and prints one JSON line per registration: its version and registration id.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import fleetlog


def main(name: str, count: int, go: Path) -> None:
    exp = fleetlog.Experiment("models-race")
    run = exp.start_logging(telemetry=False)
    while not go.exists():  # a start line shared with the other process
        time.sleep(0.01)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            path = Path(tmp) / "model.bin"
            path.write_bytes(f"{os.getpid()}:{i}".encode())
            model = run.register_model(name, path, tags={"i": i}, timeout_seconds=120)
            print(json.dumps({"version": model.version, "bytes": f"{os.getpid()}:{i}", "run": run.id}), flush=True)
    run.complete()
    exp.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
