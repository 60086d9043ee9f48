"""Producer-side faults: no broker at all, a killed training process, a full spool."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import time

from fleetlog.producers.sync import sync_spool
from polling import wait_for

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.lag import consumer_lag
from fleetlog.localkafka import free_port


def landed(settings: Settings, run_id: str) -> tuple[int, float]:
    df = query.sql(
        "SELECT count() AS n, sum(value) AS s FROM metric_points WHERE run_id = {r:String}",
        {"r": run_id},
        settings=settings,
    )
    return int(df["n"].iloc[0]), float(df["s"].iloc[0])


def wait_landed(settings: Settings, run_id: str, expected: tuple[int, float], timeout: float = 60) -> None:
    wait_for(lambda: landed(settings, run_id) == expected, timeout, f"{expected} points of {run_id} to land")


def sink_caught_up(settings: Settings) -> bool:
    """The sink committed every record of the SDK's topics, so it inserted them all (it commits after inserting)."""
    lag = asyncio.run(consumer_lag(settings, "fleetlog-sink", [settings.metrics_topic, settings.events_topic]))
    return sum(lag.values()) == 0


def test_broker_unreachable_from_the_start_then_sync_lands_everything_once(settings, stack):
    nowhere = settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}", telemetry_interval_seconds=0)
    exp = fleetlog.Experiment("no-broker", settings=nowhere)
    run = exp.start_logging()
    t = time.perf_counter()
    for i in range(3_000):
        run.log("x", float(i))
    assert time.perf_counter() - t < 1.0
    run.complete()  # cannot be acknowledged: spooled when the sender gives up
    exp.close(timeout_seconds=15)
    assert list(nowhere.spool_dir.rglob("*.spool"))
    report = asyncio.run(sync_spool(settings, nowhere.spool_dir))
    assert report.points == 3_000
    wait_landed(settings, run.id, (3_000, float(sum(range(3_000)))))
    again = asyncio.run(sync_spool(settings, nowhere.spool_dir))
    assert again.messages == 0  # the spool is consumed


KILLED = """
import os, signal, sys
import fleetlog

exp = fleetlog.Experiment("killed")
run = exp.start_logging(telemetry=False)
for i in range(10_000):
    run.log("x", 1.0)
assert run.flush(30)
print(run.id, flush=True)
for i in range(5_000):
    run.log("x", 1.0)  # still in memory when the process dies
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_everything_flush_returned_for_survives_a_sigkill(settings, stack, sdk_env, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    env = {**sdk_env, "FLEETLOG_TELEMETRY_INTERVAL_SECONDS": "0"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == -9
    run_id = out.stdout.split()[0]
    wait_for(lambda: landed(settings, run_id)[0] >= 10_000, 60, "the 10,000 flushed points to land")
    wait_for(lambda: sink_caught_up(settings), 60, "the sink to take in whatever else reached Kafka")
    n, total = landed(settings, run_id)
    assert 10_000 <= n <= 15_000 and total == n  # flushed points all there; the rest at most what was buffered


def test_a_full_spool_warns_drops_newest_and_training_goes_on(tmp_path, caplog):
    s = Settings.build(
        home=tmp_path,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        mode="offline",
        spool_max_bytes=50_000,
        telemetry_interval_seconds=0,
        flush_interval_seconds=0.05,
    )
    exp = fleetlog.Experiment("full", settings=s)
    run = exp.start_logging()
    with caplog.at_level(logging.WARNING, logger="fleetlog"):
        for _ in range(20):
            for i in range(1_000):
                run.log("x", float(i))
            run.flush(5)
    exp.close(timeout_seconds=5)
    assert "spool full" in caplog.text
    spooled = sum(p.stat().st_size for p in s.spool_dir.rglob("*.spool"))
    assert 0 < spooled <= 50_000
    assert exp._sender is None  # closed cleanly despite the full disk budget
