"""Offline runs, broker outages and forks: nothing lost, nothing duplicated, training never blocks."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest
from fleetlog.producers.sync import sync_spool
from polling import eventually, wait_for
from sink_backends import wait_drained

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack


def counts(settings: Settings, run_id: str) -> dict[str, tuple[int, float]]:
    df = query.sql(
        "SELECT metric, count() AS n, sum(value) AS s FROM metric_points WHERE run_id = {r:String} GROUP BY metric",
        {"r": run_id},
        settings=settings,
    )
    return {m: (int(n), float(s)) for m, n, s in df.itertuples(index=False)}


def wait_for_counts(settings: Settings, run_id: str, expected: dict, timeout: float = 90.0) -> None:
    def check() -> None:
        assert counts(settings, run_id) == expected

    eventually(check, timeout)


@pytest.fixture
def sink_settings(settings: Settings, stack: LocalStack) -> Settings:
    return settings.replace(telemetry_interval_seconds=0)


def test_offline_run_spools_to_disk_and_sync_lands_it_exactly_once(sink_settings, tmp_path):
    offline = sink_settings.replace(mode="offline")
    exp = fleetlog.Experiment("offline", settings=offline)
    run = exp.start_logging()
    for i in range(20_000):
        run.log("x", float(i))
    run.log_params({"where": "plane"})
    run.complete()  # durable on disk, not in Kafka
    exp.close()
    spooled = list(offline.spool_dir.rglob("*.spool"))
    assert spooled and sum(p.stat().st_size for p in spooled) > 20_000 * 26
    backup = tmp_path / "backup"
    shutil.copytree(offline.spool_dir, backup)

    report = asyncio.run(sync_spool(sink_settings))
    assert report.points == 20_000 and not list(offline.spool_dir.rglob("*.spool"))
    expected = {"x": (20_000, float(sum(range(20_000))))}
    wait_for_counts(sink_settings, run.id, expected)
    # Syncing the same spool again (say, from a backup) must not duplicate anything.
    again = asyncio.run(sync_spool(sink_settings, next(p for p in backup.iterdir() if p.is_dir())))
    assert again.points == 20_000
    wait_drained(sink_settings)  # the sink took in the second copy: whatever it was going to store, it stored
    assert counts(sink_settings, run.id) == expected
    status = query.sql("SELECT status FROM runs FINAL WHERE run_id = {r:String}", {"r": run.id}, settings=sink_settings)
    assert status["status"].tolist() == ["Completed"]


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(state_dir=tmp_path_factory.mktemp("outage"), port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("outage_seconds", [0, 30], ids=["blip", "30s"])
def test_broker_outage_mid_run_spools_and_replays_without_blocking(own_broker, tmp_path, outage_seconds):
    s = Settings.build(
        home=tmp_path / "home",
        kafka_bootstrap=own_broker.bootstrap,
        topic_prefix=f"o{uuid.uuid4().hex[:8]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        telemetry_interval_seconds=0,
    )
    stack = LocalStack(s)
    stack.start(SINK)
    try:
        exp = fleetlog.Experiment("outage", settings=s)
        run = exp.start_logging()
        for _ in range(5_000):
            run.log("x", 1.0)
        assert run.flush(30)
        own_broker.stop()
        down_since = time.monotonic()
        slowest = 0.0
        for i in range(5_000):
            t = time.perf_counter()
            run.log("x", 2.0)
            slowest = max(slowest, time.perf_counter() - t)
            if outage_seconds and i % 500 == 499:  # keep training (and logging) through the whole outage
                time.sleep(outage_seconds / 10)  # the test's subject: an outage this long, not a wait for a state
        assert slowest < 0.05  # the training loop never waits on the broker
        assert not run.flush(3)  # not acknowledged: spooled, not lost
        wait_for(lambda: any(s.spool_dir.rglob("*.spool")), 30, "the unacknowledged messages to reach the spool", 0.2)
        assert time.monotonic() - down_since >= outage_seconds
        own_broker.start()
        deadline = time.monotonic() + 90
        while not run.flush(10):
            assert time.monotonic() < deadline, "the spool was not replayed after the broker returned"
        run.complete()
        exp.close()
        wait_for_counts(s, run.id, {"x": (10_000, 15_000.0)})
        assert run.dropped_points == 0
    finally:
        stack.stop(SINK)


FORKING = """
import os, sys
import fleetlog

exp = fleetlog.Experiment("fork")
run = exp.start_logging(telemetry=False)
for i in range(100):
    run.log("parent", 1.0)          # buffered, not yet sent when we fork
pid = os.fork()
if pid == 0:
    for i in range(5):
        run.log("child", 1.0)
    ok = run.flush(30)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
run.log("parent", 1.0)
run.complete()
exp.close()
print(run.id, os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_forked_child_neither_deadlocks_nor_duplicates_buffered_points(sink_settings, sdk_env, tmp_path):
    script = tmp_path / "forking.py"
    script.write_text(textwrap.dedent(FORKING))
    env = {**sdk_env, "FLEETLOG_TELEMETRY_INTERVAL_SECONDS": "0", "FLEETLOG_FLUSH_INTERVAL_SECONDS": "5"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id, child_code = out.stdout.split()
    assert child_code == "0"
    wait_for_counts(sink_settings, run_id, {"parent": (101, 101.0), "child": (5, 5.0)})
