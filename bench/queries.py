"""Queries on a store of 10M+ points, through the HTTP endpoint, beside MLflow and TensorBoard readers.

``build_store`` fills a chDB store in its own process (the real migrations, then
``INSERT ... SELECT`` from ``numbers()``): 100 runs x 30 metrics x 3,000 steps, plus one run
with two 1M-point series, ``train/loss`` with the rollups the processors would have
written for it and ``train/loss_norollup`` without, so both chart paths are timed; every series
also gets the ``metric_summaries`` row the processors keep.  The
sink process then owns the store and serves it; every timed call goes through
``fleetlog.query`` over HTTP, as a user's would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import median, percentile, timed

__all__ = ["BIG_RUN", "build_store", "mlflow_history", "read_queries", "tensorboard_history"]

BIG_RUN = "big-run"
RUNS, METRICS, STEPS = 100, 30, 3000
RESOLUTIONS = (10, 100, 1000, 10000)

_FLEET = f"""
INSERT INTO metric_points
SELECT
    concat('run-', leftPad(toString(intDiv(number, {METRICS * STEPS})), 3, '0')) AS run_id,
    if(m = 0, 'train/loss', concat('layers/', leftPad(toString(m), 2, '0'), '/grad_norm')) AS metric,
    0 AS rank,
    s AS step,
    now64(3) - toIntervalMillisecond(({STEPS} - s) * 50) AS ts,
    toFloat64(toFloat32(0.2 + 2.3 * exp(-s / 600) * (1 + 0.05 * randNormal(0, 1)))) AS value
FROM (SELECT number, intDiv(number % {METRICS * STEPS}, {STEPS}) AS m, number % {STEPS} AS s
      FROM numbers({RUNS * METRICS * STEPS}))
"""

_BIG = """
INSERT INTO metric_points
SELECT '{run}', '{metric}', 0, number,
    now64(3) - toIntervalMillisecond(({n} - number) * 50),
    toFloat64(toFloat32(0.2 + 2.3 * exp(-number / {tau}) * (1 + 0.05 * randNormal(0, 1))))
FROM numbers({n})
"""

_ROLLUP = """
INSERT INTO metric_rollups
    (run_id, metric, rank, resolution, bucket, count, nonfinite, sum, min, min_step, max, max_step,
     first, first_step, last, last_step, first_ts, last_ts, version)
SELECT run_id, metric, rank, {r}, intDiv(step, {r}) AS b, count(), countIf(NOT isFinite(value)),
    sumIf(value, isFinite(value)), min(value), argMin(step, value), max(value), argMax(step, value),
    argMin(value, step), min(step), argMax(value, step), max(step), min(ts), max(ts), 1
FROM metric_points WHERE run_id = '{run}' AND metric = 'train/loss'
GROUP BY run_id, metric, rank, b
"""


_SUMMARIES = """
INSERT INTO metric_summaries
    (run_id, metric, rank, count, nonfinite, sum, min, min_step, max, max_step,
     first, first_step, last, last_step, first_ts, last_ts, version)
SELECT run_id, metric, rank, count(), countIf(NOT isFinite(value)), sumIf(value, isFinite(value)),
    min(value), argMin(step, value), max(value), argMax(step, value),
    argMin(value, step), min(step), argMax(value, step), max(step), min(ts), max(ts), 1
FROM metric_points GROUP BY run_id, metric, rank
"""

LATEST = (
    "SELECT run_id, metric, argMax(last, (last_step, version)) AS last_value, max(last_step) AS at_step "
    "FROM metric_summaries FINAL GROUP BY run_id, metric ORDER BY run_id, metric"
)


def build_store(*, home: str, big_points: int) -> dict[str, Any]:
    """Fill the store; returns its point count and how long building took."""
    from fleetlog.store.client import open_store

    started = time.perf_counter()
    client = open_store(f"chdb://{home}/store")
    client.command(_FLEET)
    for metric in ("train/loss", "train/loss_norollup"):
        client.command(_BIG.format(run=BIG_RUN, metric=metric, n=big_points, tau=big_points / 5))
    for r in RESOLUTIONS:
        client.command(_ROLLUP.format(r=r, run=BIG_RUN))
    ids = (
        f"arrayJoin(arrayConcat(['{BIG_RUN}'], "
        f"arrayMap(i -> concat('run-', leftPad(toString(i), 3, '0')), range({RUNS}))))"
    )
    client.command(
        "INSERT INTO runs (run_id, project, experiment, name, status, start_time, end_time, updated_at) "
        f"SELECT id, 'bench', 'bench', id, 'Completed', now64(3) - INTERVAL 1 HOUR, now64(3), now64(6) "
        f"FROM (SELECT {ids} AS id)"
    )
    params = ("lr", "batch_size", "model.layers", "optimizer", "seed")
    for table, keys in (("run_params", params), ("run_tags", ("dataset", "suite"))):
        client.command(
            f"INSERT INTO {table} (run_id, key, value, value_type, updated_at) "
            f"SELECT id, k, toString(cityHash64(id, k) % 1000), 'int', now64(6) "
            f"FROM (SELECT {ids} AS id) ARRAY JOIN {list(keys)!r} AS k"
        )
    client.command(_SUMMARIES)  # what the processors keep per series, as for the rollups above
    client.command("OPTIMIZE TABLE metric_points FINAL")
    points = client.query("SELECT count() FROM metric_points").result_rows[0][0]
    client.close()
    return {"points": points, "runs": RUNS + 1, "build_seconds": time.perf_counter() - started}


def _times(fn: Any, reps: int) -> list[float]:
    fn()  # warm: catalog, connection, engine caches
    return timed(fn, reps=reps)


def read_queries(*, home: str, http_port: int, reps: int) -> dict[str, Any]:
    """Every timed read, through fleetlog.query and the endpoint (as its reader); seconds per call (median, p90)."""
    import fleetlog.query as q
    from fleetlog.config import Settings

    settings = Settings.build(home=home, http_port=http_port)
    client = q.client(settings)
    out: dict[str, Any] = {}

    def record(name: str, fn: Any, n: int = reps) -> None:
        times = _times(fn, n)
        out[name] = {"p50": median(times), "p90": percentile(times, 90), "reps": n}

    charts = {}
    for metric in ("train/loss", "train/loss_norollup"):
        frame = q.metric(BIG_RUN, metric, points=1000, settings=settings)
        charts[metric] = {"points": len(frame), "resolution": frame.attrs["resolution"]}
        record(f"chart {metric}", lambda m=metric: q.metric(BIG_RUN, m, points=1000, settings=settings))
    out["charts"] = charts
    downsample = (
        "SELECT intDiv(step, 1000) AS b, min(step), avg(value), min(value), max(value) FROM metric_points "
        "WHERE run_id = {r:String} AND metric = {m:String} GROUP BY b ORDER BY b"
    )
    bound = {"r": BIG_RUN, "m": "train/loss_norollup"}
    record("chart engine (downsample SQL)", lambda: client.query(downsample, parameters=bound))
    summary = client.query(downsample, parameters=bound).summary or {}
    out["chart engine elapsed_ns"] = summary.get("elapsed_ns")

    runs = q.runs(experiment="bench", metrics=["train/loss"], limit=200, settings=settings)
    out["runs table rows"] = len(runs)
    record(
        "runs table + summaries",
        lambda: q.runs(experiment="bench", metrics=["train/loss"], limit=200, settings=settings),
    )
    ids = runs["run_id"].tolist()
    latest = q.summaries(ids, settings=settings)
    out["latest rows"] = len(latest)
    record("latest per metric, all runs", lambda: q.summaries(ids, settings=settings))
    record(
        "latest per metric, all runs (raw points)",
        lambda: q.summaries(ids, source="raw", settings=settings),
        max(reps // 4, 3),
    )

    latest = q.sql(LATEST, settings=settings)
    out["latest rows (summaries table)"] = len(latest)
    record("latest per metric, all runs (metric_summaries)", lambda: q.sql(LATEST, settings=settings))

    export = "SELECT step, value FROM metric_points WHERE run_id = {r:String} AND metric = {m:String} ORDER BY step"
    bound = {"r": BIG_RUN, "m": "train/loss"}

    def to_numpy() -> int:
        table = q.sql(export, bound, output="arrow", settings=settings)
        step, value = table.column("step").to_numpy(), table.column("value").to_numpy()
        return len(step) + len(value)

    out["export points"] = to_numpy() // 2
    record("export 1M -> numpy (Arrow)", to_numpy, max(reps // 2, 3))
    record("export 1M -> pandas", lambda: q.sql(export, bound, settings=settings), max(reps // 4, 3))
    return out


def mlflow_history(*, db: str, reps: int) -> dict[str, Any]:
    """MlflowClient.get_metric_history of the loss series that the storage bench wrote."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run_id = client.search_runs([e.experiment_id for e in client.search_experiments()])[0].info.run_id
    points = len(client.get_metric_history(run_id, "loss"))
    times = _times(lambda: client.get_metric_history(run_id, "loss"), reps)
    return {"points": points, "p50": median(times), "seconds_per_point": median(times) / points}


def tensorboard_history(*, logdir: str, reps: int) -> dict[str, Any]:
    """TensorBoard's EventAccumulator reading every scalar of the event file the storage bench wrote."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read() -> int:
        acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
        acc.Reload()
        events = acc.Scalars("loss")
        np.fromiter((e.value for e in events), dtype=np.float64, count=len(events))
        return len(events)

    points = read()
    times = _times(read, reps)
    return {"points": points, "p50": median(times), "seconds_per_point": median(times) / points}


def store_dir(home: str) -> Path:
    return Path(home) / "store"
