"""A training process for the processor tests: known series, optional planted faults, paced.

Run as ``python processor_proc.py RUN_ID STEPS SECONDS PLANT [END]``.  Every step logs
``train/loss`` (about 1.0 with 5 % noise), ``train/acc`` (rising linearly 0 -> 1)
and ``sys/gpu_util``.  PLANT ``faults`` puts a NaN loss at step STEPS/2, a 10x
loss spike at 3*STEPS/4 and an alert rule ``acc above 0.95``; ``clean`` plants
nothing.  END is ``complete`` (default) or ``hang``: stop logging and sleep
without completing, so the run goes Lost.  Ranks come from RANK/WORLD_SIZE.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import fleetlog


def series(steps: int, plant: str, rank: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7 + rank)
    loss = 1.0 + 0.05 * rng.standard_normal(steps)
    if plant == "faults":
        loss[steps // 2] = np.nan
        loss[3 * steps // 4] = 10.0
    return {
        "train/loss": loss,
        "train/acc": np.arange(steps) / steps,
        "sys/gpu_util": np.full(steps, 50.0 + 10 * rank),
    }


def main(run_id: str, steps: int, seconds: float, plant: str, end: str = "complete") -> None:
    rank = int(os.environ.get("RANK", "0"))
    exp = fleetlog.Experiment("processors")
    run = exp.start_logging(run_id=run_id)
    if plant == "faults":
        run.set_alert("train/acc", above=0.95)
    data = series(steps, plant, rank)
    names = list(data)
    rows = np.stack([data[n] for n in names], axis=1).tolist()
    start = time.monotonic()
    for step, row in enumerate(rows):
        run.log_metrics(dict(zip(names, row, strict=True)), step=step)
        if step % 100 == 99:
            lag = start + seconds * (step + 1) / steps - time.monotonic()
            if lag > 0:
                time.sleep(lag)  # pacing: the run logs its steps over ``seconds``, as training would
    if end == "hang":
        run.flush()
        print("hanging", flush=True)
        time.sleep(3600)  # a hung training process, until the test kills it
    run.complete()
    exp.close()
    print(f"logged {steps * len(names)} dropped {run.dropped_points}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], *sys.argv[5:])
