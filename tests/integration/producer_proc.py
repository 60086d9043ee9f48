"""A training process for the integration tests: logs a known series, then completes.

Run as ``python producer_proc.py RUN_ID POINTS``; metric ``m{k}`` gets the values
``k + i / 1000`` for its i-th point, so the test can recompute exact sums.
"""

from __future__ import annotations

import sys

import fleetlog

METRICS = 10


def main(run_id: str, points: int) -> None:
    exp = fleetlog.Experiment("integration")
    run = exp.start_logging(run_id=run_id, telemetry=False)
    run.log_params({"points": points, "opt": {"name": "sgd", "lr": 0.1}})
    run.set_tags({"suite": "e2e"})
    for i in range(points // METRICS):
        for k in range(METRICS):
            run.log(f"m{k}", k + i / 1000)
    run.complete()
    exp.close()
    print(f"logged {points} dropped {run.dropped_points}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
