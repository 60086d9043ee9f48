"""A simulated training fleet: several runs, several ranks each, realistic curves.

Each rank is its own process (as under torchrun), with ``RANK``/``WORLD_SIZE``
and ``FLEETLOG_RUN_ID`` in its environment, logging through the public SDK.
Curves come from numpy: a decaying noisy loss, a warm-up + cosine learning rate,
per-rank throughput and GPU utilisation, per-layer gradient norms, and one run
with a NaN spike.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["FleetPlan", "launch", "simulate_rank"]

LAYERS = 24


@dataclass(frozen=True)
class FleetPlan:
    experiment: str = "demo-fleet"
    runs: int = 3
    ranks: int = 2
    steps: int = 3000
    seconds: float = 20.0

    @property
    def metrics_per_step(self) -> int:
        return 6 + LAYERS

    def run_id(self, i: int, stamp: str) -> str:
        return f"{self.experiment}-{stamp}-{i}"


def curves(run: int, rank: int, steps: int) -> dict[str, np.ndarray]:
    """Every metric's whole series for one rank, computed up front (numpy, no loop)."""
    rng = np.random.default_rng(1000 * run + rank)
    s = np.arange(steps, dtype=np.float64)
    floor, scale, tau = 0.15 + 0.05 * run, 2.3, steps / (4 + run)
    loss = floor + scale * np.exp(-s / tau) * (1 + 0.08 * rng.standard_normal(steps)) + 0.01 * rng.random(steps)
    if run == 1:
        loss[steps // 2] = np.nan  # the spike a user must be able to see
        loss[steps // 2 + 1 : steps // 2 + 20] *= 3.0
    warm = max(steps // 20, 1)
    lr = np.where(s < warm, 3e-4 * s / warm, 3e-4 * 0.5 * (1 + np.cos(math.pi * (s - warm) / (steps - warm))))
    throughput = 1800 + 40 * rng.standard_normal(steps) - 150 * (rank == 1)
    out = {
        "train/loss": loss.astype(np.float32).astype(np.float64),
        "train/lr": lr,
        "train/accuracy": np.clip(1 - loss / (floor + scale), 0, 1),
        "perf/samples_per_sec": throughput,
        "sys/gpu_util": np.clip(np.round(92 + 5 * rng.standard_normal(steps)), 0, 100),
        "train/grad_norm": np.abs(1.5 * np.exp(-s / tau) + 0.2 * rng.standard_normal(steps)),
    }
    for layer in range(LAYERS):
        out[f"layers/{layer:02d}/grad_norm"] = np.abs(rng.normal(0.5 / (layer + 1), 0.05, steps))
    return out


def simulate_rank(plan: FleetPlan, run: int, rank: int) -> int:
    """Body of one rank's process; returns the number of points it logged."""
    import fleetlog

    exp = fleetlog.Experiment(plan.experiment, project="demo")
    series = curves(run, rank, plan.steps)
    names = list(series)
    matrix = np.stack([series[n] for n in names], axis=1)
    pause = plan.seconds / plan.steps
    with exp.start_logging(display_name=f"run {run}") as r:
        r.log_params({"model": {"layers": LAYERS, "width": 1024}, "optimizer": "adamw", "lr": 3e-4, "seed": run})
        r.set_tags({"fleet": "demo", "gpu": "simulated"})
        start = time.monotonic()
        for step, row in enumerate(matrix.tolist()):
            r.log_metrics(dict(zip(names, row, strict=True)), step=step)
            lag = start + (step + 1) * pause - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        if run == plan.runs - 1 and plan.runs > 2 and rank == 0:
            r.fail(RuntimeError("CUDA out of memory (simulated) at the last step"))
    exp.close()
    return plan.steps * len(names)


def launch(plan: FleetPlan, stamp: str) -> list[subprocess.Popen]:
    """Start every rank of every run as a child process."""
    procs = []
    for run in range(plan.runs):
        for rank in range(plan.ranks):
            env = {
                **os.environ,
                "RANK": str(rank),
                "WORLD_SIZE": str(plan.ranks),
                "FLEETLOG_RUN_ID": plan.run_id(run, stamp),
            }
            args = json.dumps({"plan": plan.__dict__, "run": run, "rank": rank})
            procs.append(
                subprocess.Popen([sys.executable, "-m", "fleetlog.demo", args], env=env, stdout=subprocess.PIPE)
            )
    return procs


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    count = simulate_rank(FleetPlan(**spec["plan"]), spec["run"], spec["rank"])
    print(json.dumps({"points": count}), flush=True)
