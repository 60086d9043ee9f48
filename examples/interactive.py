"""An interactive logging session (the seed's first scenario): start_logging, every log type, complete."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

import fleetlog

exp = fleetlog.Experiment("interactive-session")
run = exp.start_logging(display_name="notebook session")
run.tag("source", "examples/interactive.py")
run.log_params({"optimizer": {"name": "adamw", "lr": 3e-4}, "batch_size": 64})
run.capture_logging("session")
logging.getLogger("session").info("starting the session")

for step, loss in enumerate(np.exp(-np.linspace(0, 3, 50)) + 0.05):
    run.log("loss", float(loss), step=step)  # a series
run.log("test_accuracy", 0.94)  # a single value
run.log_list("fold_accuracies", [0.91, 0.94, 0.93, 0.95])
for epoch, (loss, acc) in enumerate([(0.8, 0.71), (0.4, 0.86), (0.2, 0.93)]):
    run.log_row("epochs", epoch=epoch, loss=loss, accuracy=acc)
run.log_table("calibration", {"bin": [0.1, 0.5, 0.9], "observed": [0.12, 0.48, 0.88]})
run.log_confusion_matrix(
    "confusion",
    {
        "schema_type": "confusion_matrix",
        "schema_version": "1.0.0",
        "data": {"class_labels": ["cat", "dog"], "matrix": [[41, 4], [6, 49]]},
    },
)
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(np.exp(-np.linspace(0, 3, 50)))
    ax.set_title("loss")
    run.log_image("loss_curve", plot=fig)
except ImportError:
    pass  # matplotlib is optional; log_image(path=...) takes a PNG file too

notes = Path(tempfile.mkdtemp()) / "notes.txt"
notes.write_text("what this session tried\n")
run.upload_file("notes.txt", notes)
run.complete()
exp.close()
print(f"run {run.id}: {run.status}")
