"""One rank of a simulated fleet, as its own process: several runs logging through the public SDK.

``python -m bench.fleet '{"prefix": ..., "runs": 4, "rank": 0, "world": 2, "steps": 20000}'`` with
the ``FLEETLOG_*`` environment of the stack under test.  Curves come from numpy
(``fleetlog.demo.curves``: loss, LR schedule, GPU util, 24 gradient norms...); every
step logs one ``log_metrics`` dict per run, as a training loop does.  ``rate`` caps the
points per second this process logs (0: as fast as it can).  ``probe`` logs only one
metric at ``probe_hz``, for latency probes.  If a run's buffer passes half of its bound
the process waits for the sender instead of letting the SDK drop points (the time spent
waiting is reported), so every point logged is a point that must land.

Prints one JSON line: points, start/end times, CPU seconds, points dropped, seconds waited.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

import fleetlog
from fleetlog.demo import curves


def _wait_for(start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(min(0.01, max(start_at - time.time(), 0)))


def probe(spec: dict) -> dict:
    exp = fleetlog.Experiment("bench-probe", project="bench")
    run = exp.start_logging(run_id=spec["prefix"], telemetry=False)
    period = 1.0 / spec["probe_hz"]
    _wait_for(spec["start_at"])
    started = time.time()
    step = 0
    while time.time() - started < spec["seconds"]:
        run.log("probe", float(step), step=step)
        step += 1
        time.sleep(max(0.0, started + step * period - time.time()))
    ended = time.time()
    run.complete()
    exp.close()
    return {"points": step, "start": started, "end": ended}


def fleet(spec: dict) -> dict:
    rank, world = spec["rank"], spec["world"]
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world))
    exp = fleetlog.Experiment("bench-fleet", project="bench")
    steps = spec["steps"]
    runs, mats = [], []
    for i in range(spec["runs"]):
        series = curves(i, rank, steps)
        names = list(series)
        mats.append(np.stack([series[n] for n in names], axis=1))
        runs.append(exp.start_logging(run_id=f"{spec['prefix']}-{i}", telemetry=False))
    per_step = len(names) * len(runs)
    bound = exp.settings.sdk.max_buffer_points // 2
    rate = spec.get("rate", 0)
    waited = 0.0
    _wait_for(spec["start_at"])
    cpu0 = os.times()
    started = time.time()
    for step in range(steps):
        for run, mat in zip(runs, mats, strict=True):
            run.log_metrics(dict(zip(names, mat[step].tolist(), strict=True)), step=step)
        if rate:
            ahead = started + (step + 1) * per_step / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
        if step % 64 == 0 and any(len(r._metrics) > bound for r in runs):
            t = time.perf_counter()
            while any(len(r._metrics) > bound // 4 for r in runs):
                time.sleep(0.002)
            waited += time.perf_counter() - t
    logged = time.time()
    for run in runs:
        run.complete()
    flushed = time.time()
    dropped = sum(r.dropped_points for r in runs)
    exp.close()
    cpu1 = os.times()
    return {
        "points": steps * per_step,
        "start": started,
        "logged": logged,
        "flushed": flushed,
        "dropped": dropped,
        "waited_seconds": waited,
        "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(probe(spec) if spec.get("probe_hz") else fleet(spec)), flush=True)
