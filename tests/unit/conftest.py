"""Shared unit fixtures: a small synthetic store behind a real ClickHouse HTTP endpoint.

``query_store`` opens in-process chDB (the one store path this test process uses),
creates a database of its own with the real schema, fills it with three runs, and
serves it with :class:`HttpEndpoint`, so readers go through clickhouse-connect over
HTTP exactly as they do against the sink's endpoint or a server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import numpy as np
import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from fleetlog.config import Settings
from fleetlog.store.client import migrate
from fleetlog.store.endpoint import HttpEndpoint

LONG_STEPS = 20_000


@dataclass(frozen=True)
class QueryStore:
    settings: Settings
    owner: Client  # the in-process chDB client, database selected: for creating extra tables in a test
    database: str


def _points(
    run_id: str, metric: str, steps: np.ndarray, values: np.ndarray, start: float, rank: int = 0, step_seconds=0.01
):
    return pd.DataFrame(
        {
            "run_id": run_id,
            "metric": metric,
            "rank": np.full(len(steps), rank, np.uint32),
            "step": steps.astype(np.int64),
            "ts": pd.to_datetime((start + steps * step_seconds) * 1000, unit="ms", utc=True),
            "value": values.astype(np.float64),
        }
    )


def _stamp(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _fill(owner: Client) -> None:
    now = time.time()
    old = now - 3 * 3600
    s = np.arange(LONG_STEPS)
    loss = 1 / (1 + s / 1000)
    loss[5000] = np.nan
    short = np.arange(300)
    frames = [
        _points("r-long", "loss", s, loss, old),
        _points("r-long", "acc", s, 1 - loss, old),
        _points("r-short", "loss", short, 2 - short / 300, now - 3, rank=0),
        # rank 1 straggles: 4x rank 0's step time (over 1.5x the ranks' median), 100 steps behind it
        _points("r-short", "loss", short[:200], 2 - short[:200] / 300, now - 9, rank=1, step_seconds=0.04),
        _points("r-other", "loss", np.arange(50), np.full(50, 3.0), old),
    ]
    owner.insert_df("metric_points", pd.concat(frames, ignore_index=True))
    runs = [
        ("r-long", "alpha", "long one", "Completed", old, old + 200, "", ""),
        ("r-short", "alpha", "short one", "Running", now - 3, None, "", ""),
        ("r-other", "beta", "other", "Failed", old - 60, old, "ValueError", "bad things"),
    ]
    owner.insert(
        "runs",
        [
            [
                rid,
                "default",
                exp,
                name,
                "",
                status,
                _stamp(st),
                en and _stamp(en),
                et,
                msg,
                "",
                "h",
                1,
                0,
                1,
                _stamp(now),
            ]
            for rid, exp, name, status, st, en, et, msg in runs
        ],
        column_names=[
            "run_id",
            "project",
            "experiment",
            "name",
            "parent_run_id",
            "status",
            "start_time",
            "end_time",
            "error_type",
            "error_message",
            "error_traceback",
            "host",
            "pid",
            "rank",
            "world_size",
            "updated_at",
        ],
    )
    stamp = pd.Timestamp(now, unit="s", tz="UTC")
    params = [
        ("r-long", "lr", "0.1", "float"),
        ("r-long", "layers", "12", "int"),
        ("r-long", "opt", "adam", "str"),
        ("r-short", "lr", "0.01", "float"),
        ("r-short", "layers", "12", "int"),
        ("r-short", "opt", "sgd", "str"),
        ("r-other", "lr", "0.1", "float"),
    ]
    tags = [("r-long", "suite", "unit", "str"), ("r-short", "suite", "unit", "str"), ("r-short", "fast", "", "str")]
    for table, rows in (("run_params", params), ("run_tags", tags)):
        owner.insert(
            table, [[*r, stamp] for r in rows], column_names=["run_id", "key", "value", "value_type", "updated_at"]
        )


@pytest.fixture(scope="module")
def query_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryStore]:
    path: Path = tmp_path_factory.getbasetemp() / "chdb-store"
    bootstrap = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    database = f"q{uuid.uuid4().hex[:10]}"
    bootstrap.command(f"CREATE DATABASE {database}")
    owner = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
    migrate(owner)
    _fill(owner)
    with HttpEndpoint(owner, port=0) as endpoint:
        host, port = endpoint.address
        reader = endpoint.credentials.reader  # readers log in as the read-only reader, as against a sink
        url = f"http://{reader.name}:{reader.password}@{host}:{port}/{database}"
        settings = Settings.build(home=tmp_path_factory.mktemp("home"), clickhouse_url=url)
        yield QueryStore(settings=settings, owner=owner, database=database)
    bootstrap.command(f"DROP DATABASE IF EXISTS {database}")
