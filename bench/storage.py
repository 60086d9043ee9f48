"""Storage: on-disk bytes per point in ClickHouse (every column of ``metric_points``), MLflow and TensorBoard.

ClickHouse: each series goes into its own copy of the real ``metric_points`` table
(same columns, codecs, engine and sort key, made by the real migrations), merged to one
part; the figure is the part's whole ``bytes_on_disk`` (run and metric names, rank,
step, time, value, marks, index) divided by the points.  MLflow (sqlite and file stores)
and TensorBoard (tensorboardX event files) store the same values; their figure is the
growth of their files divided by the points.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.series import SERIES

__all__ = ["clickhouse_bytes", "mlflow_bytes", "tensorboard_bytes", "timestamps_ms"]

REALISTIC = ("loss (float32-origin)", "lr schedule", "gpu util (int)")
WORST = "float64 noise (worst)"


def timestamps_ms(n: int, seed: int = 0) -> np.ndarray:
    """One point every ~50 ms with jitter, as a training loop logs (unix ms), ending now.

    Recent times on purpose: a store with a retention TTL drops older parts on merge.
    """
    gaps = np.random.default_rng(seed).integers(40, 60, n)
    return int(time.time() * 1000) - int(gaps.sum()) + np.cumsum(gaps)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def clickhouse_bytes(*, home: str, points: int) -> dict[str, Any]:
    import pyarrow as pa

    from fleetlog.store.client import open_store

    client = open_store(f"chdb://{home}/store")
    out: dict[str, Any] = {}
    steps = np.arange(points, dtype=np.int64)
    ts = timestamps_ms(points).view("datetime64[ms]")
    for i, (series, make) in enumerate(SERIES.items()):
        table = f"bench_storage_{i}"
        client.command(f"DROP TABLE IF EXISTS {table}")
        client.command(f"CREATE TABLE {table} AS metric_points")
        data = pa.table(
            {
                "run_id": pa.array(["bench-run-0123456789ab"] * points).dictionary_encode(),
                "metric": pa.array(["train/loss"] * points).dictionary_encode(),
                "rank": np.zeros(points, dtype=np.uint32),
                "step": steps,
                "ts": pa.array(ts),
                "value": make(points),
            }
        )
        client.insert_arrow(table, data)
        client.command(f"OPTIMIZE TABLE {table} FINAL")
        total, rows = client.query(
            "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts "
            "WHERE database = {db:String} AND table = {t:String} AND active",
            parameters={"t": table, "db": client.database},
        ).result_rows[0]
        columns = dict(
            client.query(
                "SELECT column, sum(column_data_compressed_bytes) FROM system.parts_columns "
                "WHERE database = {db:String} AND table = {t:String} AND active GROUP BY column",
                parameters={"t": table, "db": client.database},
            ).result_rows
        )
        assert rows == points, (rows, points)
        out[series] = {
            "bytes_per_point": total / points,
            "columns": {c: b / points for c, b in columns.items()},
        }
        client.command(f"DROP TABLE {table}")
    codecs = client.query(
        "SELECT name, compression_codec FROM system.columns WHERE database = {db:String} AND table = 'metric_points'",
        parameters={"db": client.database},
    ).result_rows
    out["codecs"] = dict(codecs)
    client.close()
    return out


def mlflow_bytes(*, root: str, points: int) -> dict[str, Any]:
    """The loss series logged with log_batch (1,000 per call, MLflow's limit) into both stores."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    values = next(iter(SERIES.values()))(points).tolist()
    ts = timestamps_ms(points).tolist()
    out = {}
    for store in ("sqlite", "file"):
        base = Path(root, store)
        base.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{base}/mlflow.db" if store == "sqlite" else (base / "mlruns").as_uri()
        client = MlflowClient(tracking_uri=uri)
        run_id = client.create_run(client.create_experiment(f"storage-{store}")).info.run_id
        client.log_metric(run_id, "warmup", 0.0)
        before = _dir_bytes(base)
        started = time.perf_counter()
        for lo in range(0, points, 1000):
            client.log_batch(
                run_id, metrics=[Metric("loss", values[i], ts[i], i) for i in range(lo, min(lo + 1000, points))]
            )
        seconds = time.perf_counter() - started
        out[store] = {
            "bytes_per_point": (_dir_bytes(base) - before) / points,
            "write_points_per_second": points / seconds,
        }
    return out


def tensorboard_bytes(*, root: str, points: int) -> dict[str, Any]:
    from tensorboardX import SummaryWriter

    values = next(iter(SERIES.values()))(points).tolist()
    writer = SummaryWriter(root)
    before = _dir_bytes(Path(root))
    for i, v in enumerate(values):
        writer.add_scalar("loss", v, i)
    writer.close()
    return {"bytes_per_point": (_dir_bytes(Path(root)) - before) / points}
