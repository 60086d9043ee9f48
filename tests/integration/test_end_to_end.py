"""SDK processes -> Kafka -> sink -> ClickHouse, counted exactly, then replayed without duplicates.

Parametrised over both store backends: the embedded chDB store the sink owns, and a store
served over ClickHouse's HTTP interface that the sink writes to with clickhouse-connect's
HTTP client, as to a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from polling import eventually, wait_for
from sink_backends import BACKENDS, backend_settings, start_backend, stop_backend

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.lag import consumer_lag, topic_partitions
from fleetlog.stack import SINK

PRODUCER = Path(__file__).with_name("producer_proc.py")
PROCESSES, POINTS, METRICS = 3, 100_000, 10


@pytest.fixture(params=BACKENDS)
def served(request, settings: Settings):
    """(settings, stack) with a sink writing to the backend the parameter names."""
    served_settings = backend_settings(settings, request.param)
    stack = start_backend(served_settings)
    yield served_settings, stack
    stop_backend(stack)


def expected_sums() -> dict[str, float]:
    i = np.arange(POINTS // METRICS)
    return {f"m{k}": float(np.sum(k + i / 1000)) for k in range(METRICS)}


def landed(settings: Settings, run_ids: list[str]):
    return query.sql(
        "SELECT run_id, metric, count() AS n, sum(value) AS total, uniqExact(step) AS steps, max(step) AS last "
        "FROM metric_points WHERE run_id IN {ids:Array(String)} GROUP BY run_id, metric ORDER BY run_id, metric",
        {"ids": run_ids},
        settings=settings,
    )


def total(settings: Settings) -> int:
    return int(query.sql("SELECT count() AS n FROM metric_points", settings=settings)["n"].iloc[0])


async def rewind(settings: Settings, group: str) -> None:
    """Commit offset 0 on every partition: the next sink replays the whole topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        tps = await topic_partitions(admin, [settings.metrics_topic, settings.events_topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


def test_three_processes_land_exactly_once_and_replay_adds_nothing(served, sdk_env):
    settings, stack = served
    run_ids = [f"e2e-{i}" for i in range(PROCESSES)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(PRODUCER), rid, str(POINTS)], env=sdk_env, stdout=subprocess.PIPE, text=True
        )
        for rid in run_ids
    ]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0 and f"logged {POINTS} dropped 0" in out

    wait_for(lambda: total(settings) >= PROCESSES * POINTS, 120, "all points in ClickHouse")
    df = landed(settings, run_ids)
    assert len(df) == PROCESSES * METRICS
    assert (df["n"] == POINTS // METRICS).all() and (df["steps"] == POINTS // METRICS).all()
    assert (df["last"] == POINTS // METRICS - 1).all()
    sums = expected_sums()
    for row in df.itertuples():
        assert abs(row.total - sums[row.metric]) < 1e-6 * max(1.0, sums[row.metric]), row

    def completed() -> None:  # run events travel on their own topic: they may land a flush after the points
        runs = query.sql("SELECT run_id, status, experiment FROM runs FINAL ORDER BY run_id", settings=settings)
        assert runs["run_id"].tolist() == run_ids
        assert set(runs["status"]) == {"Completed"} and set(runs["experiment"]) == {"integration"}

    eventually(completed, timeout=30)
    params = query.sql("SELECT key, value FROM run_params FINAL WHERE run_id = 'e2e-0' ORDER BY key", settings=settings)
    assert dict(zip(params["key"], params["value"], strict=True)) == {
        "opt.lr": "0.1",
        "opt.name": "sgd",
        "points": str(POINTS),
    }

    # Replay: stop the sink, rewind its group to offset 0, start it again.
    stack.stop(SINK)
    asyncio.run(rewind(settings, "fleetlog-sink"))
    assert sum(asyncio.run(consumer_lag(settings, "fleetlog-sink", [settings.metrics_topic])).values()) > 0
    stack.start(SINK)
    wait_for(
        lambda: (
            sum(
                asyncio.run(
                    consumer_lag(settings, "fleetlog-sink", [settings.metrics_topic, settings.events_topic])
                ).values()
            )
            == 0
        ),
        120,
        "the replay to finish",
    )  # the sink commits only after it inserted: no lag means the replay is in the store, duplicates included
    assert total(settings) == PROCESSES * POINTS
    again = landed(settings, run_ids)
    assert again["n"].tolist() == df["n"].tolist() and np.allclose(again["total"], df["total"])
