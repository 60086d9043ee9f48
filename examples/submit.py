"""Submit examples/train.py as a script run and stream its output (the seed's ScriptRunConfig scenario)."""

from __future__ import annotations

from pathlib import Path

import fleetlog

exp = fleetlog.Experiment("train-on-local")
config = fleetlog.ScriptRunConfig(source_directory=str(Path(__file__).parent), script="train.py")
run = exp.submit(config, show_output=True)
run.wait_for_completion(show_output=True)
exp.close()
print(f"run {run.id}: {run.status}")
