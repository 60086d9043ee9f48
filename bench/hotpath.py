"""Hot path: the cost of ``run.log`` / ``run.log_metrics`` on the caller's thread, beside MLflow and TensorBoard.

Each system runs in its own spawned interpreter.  fleetlog logs with its background
sender running and shipping to a real broker, so the sender's share of the GIL is in
the figure.  The floor is a Python method call that stamps the time and appends a
tuple to a list, timed in the same process.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import median, percentile

__all__ = ["fleetlog_burst", "fleetlog_hot", "mlflow_hot", "tensorboard_hot"]


class _Floor:
    """What any logger must at least do: a method call, a timestamp, an append."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, float]] = []

    def log(self, name: str, value: float) -> None:
        self.points.append((name, value, time.time()))


def _per_call_ns(loop: Any, calls: int, reps: int, cpu: list[float] | None = None) -> list[float]:
    """Wall-clock ns per call of each rep; ``cpu`` collects this thread's CPU ns per call."""
    out = []
    for _ in range(reps):
        c = time.thread_time_ns()
        t = time.perf_counter_ns()
        loop()
        out.append((time.perf_counter_ns() - t) / calls)
        if cpu is not None:
            cpu.append((time.thread_time_ns() - c) / calls)
    return out


def _single_calls(log: Any, values: list[float]) -> np.ndarray:
    """Each call timed on its own (the timer's own cost is included)."""
    gc.collect()
    out = np.empty(len(values), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, v in enumerate(values):
        t = clock()
        log("loss", v)
        out[i] = clock() - t
    return out


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _settings(bootstrap: str, topic_prefix: str, home: str) -> Any:
    """The SDK's settings for a bench process: the bench's broker and topics, no telemetry, no outputs upload."""
    from fleetlog.config import Settings

    return Settings.build(
        home=Path(home),
        kafka_bootstrap=bootstrap,
        topic_prefix=topic_prefix,
        telemetry_interval_seconds=0,
        outputs_dir="",
    )


def fleetlog_hot(*, bootstrap: str, topic_prefix: str, home: str, calls: int, reps: int) -> dict[str, Any]:
    """run.log in a tight loop, log_metrics with 100 metrics, worst single call, memory."""
    import fleetlog

    settings = _settings(bootstrap, topic_prefix, home)
    exp = fleetlog.Experiment("bench-hotpath", settings=settings)
    run = exp.start_logging(run_id=f"hot-{os.getpid()}", telemetry=False)
    values = np.random.default_rng(0).standard_normal(calls).tolist()
    run.log("loss", 0.0)
    assert run.flush(60), "the sender could not reach the broker"
    rss0 = _rss()
    peak = [rss0]
    floor_single = _single_calls(_Floor().log, values)
    floor = _Floor()
    log = run.log

    def fleet_loop() -> None:
        for v in values:
            log("loss", v)

    def settle() -> None:
        """Between timed reps: ship what the rep logged, so no rep starts with a full buffer."""
        peak.append(_rss())
        run.flush(60)

    def floor_loop() -> None:
        floor.points.clear()
        for v in values:
            floor.log("loss", v)

    fleet, base, fleet_cpu, base_cpu = [], [], [], []
    for _ in range(reps):  # interleaved, so both see the same machine load
        fleet += _per_call_ns(fleet_loop, calls, 1, fleet_cpu)
        settle()
        base += _per_call_ns(floor_loop, calls, 1, base_cpu)
    floor.points.clear()

    names = [f"layer{i:02d}/grad_norm" for i in range(100)]
    dicts = [dict(zip(names, row, strict=True)) for row in np.random.default_rng(1).random((16, 100)).tolist()]
    steps = max(calls // 100, 100)
    log_metrics = run.log_metrics

    def metrics_loop() -> None:
        for i in range(steps):
            log_metrics(dicts[i & 15], step=i)

    many_cpu: list[float] = []
    many = []
    for _ in range(reps):
        many += [ns / 100 for ns in _per_call_ns(metrics_loop, steps, 1, many_cpu)]
        settle()

    single = _single_calls(log, values)
    flushed = time.perf_counter()
    durable = run.flush(120)
    flush_seconds = time.perf_counter() - flushed
    stats = dict(exp._sender.stats) if exp._sender else {}
    dropped = run.dropped_points
    run.complete()
    exp.close()
    return {
        "log_ns": median(fleet),
        "floor_ns": median(base),
        "log_ns_reps": fleet,
        "floor_ns_reps": base,
        "log_cpu_ns": median(fleet_cpu),
        "floor_cpu_ns": median(base_cpu),
        "log_metrics_cpu_ns_per_point": median(many_cpu) / 100,
        "log_metrics_ns_per_point": median(many),
        "log_metrics_reps": many,
        "single_call_p50_ns": float(np.percentile(single, 50)),
        "single_call_p999_ns": float(np.percentile(single, 99.9)),
        "single_call_max_ns": float(single.max()),
        "floor_single_p999_ns": float(np.percentile(floor_single, 99.9)),
        "floor_single_max_ns": float(floor_single.max()),
        "peak_extra_rss_mib": (max(peak) - rss0) / 2**20,
        "rss_after_each_rep_mib": [(r - rss0) / 2**20 for r in peak[1:]],
        "buffer_bound_mib": settings.sdk.max_buffer_points * 28 / 2**20,
        "dropped": dropped,
        "durable": durable,
        "final_flush_seconds": flush_seconds,
        "points_sent": stats.get("points", 0),
    }


def fleetlog_burst(*, bootstrap: str, topic_prefix: str, home: str, seconds: float) -> dict[str, Any]:
    """The sender's shipping rate under a training thread that does nothing but ``log_metrics(100 metrics)``.

    That loop is the worst case for the sender: it holds the GIL except when the
    interpreter preempts it.  ``shipped_points_per_second`` counts what Kafka
    acknowledged during the burst; when nothing was spilled to the spool, the sender
    kept up with everything logged, so the figure is how fast one process can log
    without spilling (bounded by the loop itself).  After the burst the spool is
    replayed; ``drain_seconds`` is how long ``flush`` took to get everything to Kafka.
    """
    import fleetlog

    settings = _settings(bootstrap, topic_prefix, home)
    exp = fleetlog.Experiment("bench-burst", settings=settings)
    run = exp.start_logging(run_id=f"burst-{os.getpid()}", telemetry=False)
    run.log("warmup", 0.0)
    assert run.flush(60), "the sender could not reach the broker"
    stats = exp._sender.stats if exp._sender else {}
    names = [f"layer{i:02d}/grad_norm" for i in range(100)]
    rows = [dict(zip(names, row, strict=True)) for row in np.random.default_rng(2).random((16, 100)).tolist()]
    log_metrics, step, before = run.log_metrics, 0, stats.get("points", 0)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            log_metrics(rows[step & 15], step=step)
            step += 1
    elapsed = time.perf_counter() - started
    shipped = stats.get("points", 0) - before
    spilled = stats.get("spooled_points", 0)
    flushed = time.perf_counter()
    durable = run.flush(600)
    drain = time.perf_counter() - flushed
    out = {
        "seconds": elapsed,
        "logged_points": step * 100,
        "logged_points_per_second": step * 100 / elapsed,
        "shipped_points_per_second": shipped / elapsed,
        "spilled_points": spilled,
        "dropped": run.dropped_points,
        "drain_seconds": drain,
        "durable": durable,
        "stats": dict(stats),
    }
    run.complete()
    exp.close()
    return out


def mlflow_hot(*, root: str, store: str, synchronous: bool, calls: int, reps: int) -> dict[str, Any]:
    """MlflowClient.log_metric per point (sync or async), and log_batch of 100 metrics (sync only)."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps the file store behind this switch
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db" if store == "sqlite" else Path(root, "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(f"hot-{store}-{synchronous}")
    run_id = client.create_run(exp).info.run_id
    client.log_metric(run_id, "warmup", 0.0, step=0)
    values = np.random.default_rng(0).standard_normal(calls).tolist()
    futures: list[Any] = []
    step = [0]

    def loop() -> None:
        for v in values:
            step[0] += 1
            if synchronous:
                client.log_metric(run_id, "loss", v, step=step[0])
            else:
                futures.append(client.log_metric(run_id, "loss", v, step=step[0], synchronous=False))

    per_call = _per_call_ns(loop, calls, reps)
    out: dict[str, Any] = {"log_ns": median(per_call), "log_ns_reps": per_call, "calls": calls}
    if not synchronous:
        t = time.perf_counter()
        for f in futures:
            f.wait()
        out["drain_points_per_second"] = len(futures) / max(time.perf_counter() - t, 1e-9)
    else:
        names = [f"layer{i:02d}/grad_norm" for i in range(100)]
        batches = max(calls // 100, 3)
        now = int(time.time() * 1000)

        def batch_loop() -> None:
            for _ in range(batches):
                step[0] += 1
                client.log_batch(run_id, metrics=[Metric(n, 0.5, now, step[0]) for n in names])

        out["log_batch_ns_per_point"] = median([ns / 100 for ns in _per_call_ns(batch_loop, batches, reps)])
    return out


def tensorboard_hot(*, root: str, calls: int, reps: int) -> dict[str, Any]:
    """tensorboardX SummaryWriter.add_scalar per point (it writes from a background thread)."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(root)
    values = np.random.default_rng(0).standard_normal(calls).tolist()
    step = [0]

    def loop() -> None:
        for v in values:
            step[0] += 1
            writer.add_scalar("loss", v, step[0])

    per_call = _per_call_ns(loop, calls, reps)
    writer.close()
    return {"log_ns": median(per_call), "log_ns_reps": per_call, "p99_rep_ns": percentile(per_call, 99)}
