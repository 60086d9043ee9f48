"""Stream processors against the real broker and a sink: derived tables equal a recomputation from raw points.

Every test runs producers through the SDK, one or more ``fleetlog processor``
workers as subprocesses, and the sink; then it waits until both consumer groups
have nothing left and compares what landed in ClickHouse with pandas over
``metric_points``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pandas as pd
import pytest
from aiokafka import AIOKafkaProducer
from polling import wait_for, wait_steady

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.lag import consumer_lag
from fleetlog.stack import LocalStack

PRODUCER = Path(__file__).with_name("processor_proc.py")
RESOLUTIONS = (10, 100, 1000, 10000)
EXACT = ["count", "nonfinite", "min", "min_step", "max", "max_step", "first", "first_step", "last", "last_step"]


class Processors:
    """``fleetlog processor`` workers as child processes of the test."""

    def __init__(self, settings: Settings, extra_env: dict[str, str]) -> None:
        self.settings = settings
        self.env = {
            **os.environ,
            **settings.to_env(),
            **extra_env,
        }
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = open(self.settings.home / f"processor-{len(self.procs)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlog", "processor", "--log-level", "WARNING"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        status = self.settings.state_dir / f"processor-{proc.pid}.json"
        wait_for(lambda: status.exists() or proc.poll() is not None, 60, "a processor worker to be ready")
        assert proc.poll() is None, f"processor exited with {proc.returncode}"
        return proc

    def stats(self, proc: subprocess.Popen) -> dict[str, float]:
        """The counters a worker last wrote to its status file."""
        try:
            return json.loads((self.settings.state_dir / f"processor-{proc.pid}.json").read_text())["stats"]
        except (OSError, ValueError):
            return {}

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        proc.send_signal(sig)
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)


@pytest.fixture
def processors(settings: Settings, stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Processors]:
    extra = getattr(request, "param", {})
    settings.home.mkdir(parents=True, exist_ok=True)
    workers = Processors(settings, extra)
    yield workers
    workers.stop_all()


def produce(sdk_env: dict[str, str], run_id: str, steps: int, seconds: float, plant: str, **env: str):
    return subprocess.Popen(
        [sys.executable, str(PRODUCER), run_id, str(steps), str(seconds), plant, env.pop("end", "complete")],
        env={**sdk_env, **env},
        stdout=subprocess.PIPE,
        text=True,
    )


def settled(settings: Settings) -> None:
    """Wait until processors and sink have consumed everything, and stay so for 1.5 s (timers emit too)."""
    s = settings

    def idle() -> bool:
        source = asyncio.run(consumer_lag(s, f"{s.topics.prefix}-processor", [s.metrics_topic, s.events_topic]))
        topics = [s.derived_topic, s.alerts_topic, s.dead_letter_topic, s.metrics_topic]
        sink = asyncio.run(consumer_lag(s, "fleetlog-sink", topics))
        return sum(source.values()) + sum(sink.values()) == 0

    wait_steady(idle, 1.5, 90, "processors and sink to catch up")


def sql(settings: Settings, text: str) -> pd.DataFrame:
    return query.sql(text, settings=settings)


def raw_points(settings: Settings) -> pd.DataFrame:
    return sql(
        settings, "SELECT run_id, metric, rank, step, ts, value FROM metric_points ORDER BY run_id, metric, rank, step"
    )


def recompute(points: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The envelope aggregate with pandas, over unique steps (what the producers log)."""
    p = points.copy()
    p["finite"] = np.isfinite(p["value"])
    fin = p[p["finite"]]
    g, gf = p.groupby(keys), fin.groupby(keys)
    out = pd.DataFrame(
        {
            "count": g.size(),
            "nonfinite": g["finite"].apply(lambda f: int((~f).sum())),
            "sum": gf["value"].sum(),
            "min": gf["value"].min(),
            "max": gf["value"].max(),
            "first_step": g["step"].min(),
            "last_step": g["step"].max(),
        }
    )
    out["sum"] = out["sum"].fillna(0.0)
    at_min = fin.loc[gf["value"].idxmin()].set_index(keys)["step"]
    at_max = fin.loc[gf["value"].idxmax()].set_index(keys)["step"]
    out["min_step"] = at_min.reindex(out.index).fillna(out["first_step"]).astype(np.int64)
    out["max_step"] = at_max.reindex(out.index).fillna(out["first_step"]).astype(np.int64)
    out["first"] = p.loc[g["step"].idxmin()].set_index(keys)["value"].reindex(out.index)
    out["last"] = p.loc[g["step"].idxmax()].set_index(keys)["value"].reindex(out.index)
    return out


def assert_same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    got = got.reindex(want.index)
    assert len(got) == len(want) and not got["count"].isna().any(), f"{what}: rows differ"
    for col in EXACT:
        a, b = got[col].to_numpy(np.float64), want[col].to_numpy(np.float64)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        assert same.all(), f"{what}: {col} differs at {list(want.index[~same][:3])}"
    assert np.allclose(got["sum"], want["sum"], rtol=1e-9, atol=1e-9), f"{what}: sums differ"


def check_rollups_and_summaries(settings: Settings) -> pd.DataFrame:
    points = raw_points(settings)
    assert len(points)
    rollups = sql(settings, "SELECT * FROM metric_rollups FINAL")
    for res in RESOLUTIONS:
        p = points.assign(bucket=points["step"] // res)
        got = rollups[rollups["resolution"] == res].set_index(["run_id", "metric", "rank", "bucket"])
        assert_same(got, recompute(p, ["run_id", "metric", "rank", "bucket"]), f"rollups at {res}")
    summaries = sql(settings, "SELECT * FROM metric_summaries FINAL").set_index(["run_id", "metric", "rank"])
    assert_same(summaries, recompute(points, ["run_id", "metric", "rank"]), "summaries")
    runs = sql(settings, "SELECT run_id, status, points FROM run_summaries FINAL").set_index("run_id")
    per_run = points.groupby("run_id").size()
    assert runs.loc[per_run.index, "points"].tolist() == per_run.tolist()
    return points


def alerts(settings: Settings) -> pd.DataFrame:
    return sql(settings, "SELECT run_id, metric, rank, step, rule, value, threshold FROM alerts FINAL ORDER BY run_id")


def test_restart_mid_stream_keeps_rollups_exact_and_alerts_fire_only_on_planted_faults(
    settings: Settings, processors: Processors, sdk_env
):
    steps = 4000
    first = processors.start()
    runs = [produce(sdk_env, "faulty", steps, 6.0, "faults"), produce(sdk_env, "clean", steps, 6.0, "clean")]
    wait_for(lambda: processors.stats(first).get("points", 0) > 4000, 30, "the first worker to get going")
    processors.stop(first, signal.SIGKILL)  # mid-stream, without a chance to commit or flush
    second = processors.start()
    for p in runs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and "dropped 0" in out
    settled(settings)
    stats = processors.stats(second)
    print("second worker:", {k: v for k, v in stats.items() if k.startswith(("replayed", "points", "records"))})
    assert stats["points"] < 2 * 3 * steps, "the first worker's state was not recovered"

    check_rollups_and_summaries(settings)
    runs_df = sql(settings, "SELECT run_id, status FROM run_summaries FINAL ORDER BY run_id")
    assert runs_df["status"].tolist() == ["Completed", "Completed"]

    found = alerts(settings)
    assert set(found["run_id"]) == {"faulty"}, found
    by_rule = {r.rule: r for r in found.itertuples()}
    assert set(by_rule) == {"nonfinite", "spike", "above"}, found
    assert (by_rule["nonfinite"].metric, by_rule["nonfinite"].step) == ("train/loss", steps // 2)
    assert (by_rule["spike"].metric, by_rule["spike"].step) == ("train/loss", 3 * steps // 4)
    assert by_rule["spike"].value == 10.0
    assert (by_rule["above"].metric, by_rule["above"].step) == ("train/acc", int(0.95 * steps) + 1)

    rules = sql(settings, "SELECT run_id, metric, above, isNull(below) AS no_below FROM alert_rules FINAL")
    assert rules.to_dict("records") == [{"run_id": "faulty", "metric": "train/acc", "above": 0.95, "no_below": 1}]
    windows = sql(
        settings, "SELECT sum(points) AS n FROM fleet_window_totals WHERE window_seconds = 10 AND scope = 'host'"
    )
    assert int(windows["n"].iloc[0]) == int(sql(settings, "SELECT count() AS n FROM metric_points")["n"].iloc[0])


def test_two_workers_match_a_recomputation_and_aggregate_across_ranks(
    settings: Settings, processors: Processors, sdk_env
):
    steps = 3000
    processors.start()
    processors.start()
    procs = [
        produce(sdk_env, "ddp", steps, 4.0, "clean", RANK=str(r), WORLD_SIZE="2", FLEETLOG_RUN_ID="ddp")
        for r in range(2)
    ]
    procs += [produce(sdk_env, f"solo-{i}", steps, 4.0, "clean") for i in range(3)]
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and "dropped 0" in out
    settled(settings)

    points = check_rollups_and_summaries(settings)
    assert len(sql(settings, "SELECT DISTINCT run_id FROM metric_rollups")) == 4
    ranked = sql(settings, "SELECT * FROM rank_aggregates FINAL WHERE run_id = 'ddp'")
    logged = points[(points.run_id == "ddp") & points.metric.str.startswith("train/")]
    want = logged.groupby(["metric", "step"])["value"].agg(["mean", "min", "max", "std", "size"])
    got = ranked.set_index(["metric", "step"]).reindex(want.index)
    assert (got["complete"] == 1).all() and (got["ranks"] == 2).all()
    assert np.allclose(got["mean"], want["mean"]) and np.allclose(got["min"], want["min"])
    assert np.allclose(got["std"], want["std"] * np.sqrt(1 / 2))  # population std; pandas' is the sample one
    assert alerts(settings).empty


async def _send_raw(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.metrics_topic, value, key=key)
    finally:
        await producer.stop()


@pytest.mark.parametrize("processors", [{"FLEETLOG_LOST_RUN_TIMEOUT_SECONDS": "3"}], indirect=True)
def test_malformed_messages_become_dead_letters_and_silent_runs_become_lost(
    settings: Settings, processors: Processors, sdk_env
):
    processors.start()
    rank_outside_world = msgpack.packb(
        {
            "v": 1,
            "kind": "tags",
            "run": "x",
            "src": ["h", 1, 5, 2],
            "project": "",
            "experiment": "",
            "session": "",
            "seq": 0,
            "sent": 0.0,
            "body": {},
        }
    )
    bogus = [
        (b"k1", b"\xff\x00 not msgpack"),
        (b"k2", msgpack.packb({"v": 1, "kind": "nope"})),
        (b"k3", rank_outside_world),  # under another run's key
        (b"x", rank_outside_world),
    ]
    asyncio.run(_send_raw(settings, bogus))
    hang = produce(sdk_env, "silent", 500, 1.0, "clean", end="hang")
    assert hang.stdout.readline().strip() == "hanging"
    hang.kill()
    hang.wait()
    wait_for(
        lambda: (
            "Lost" in sql(settings, "SELECT status FROM run_summaries FINAL WHERE run_id = 'silent'")["status"].tolist()
        ),
        60,
        "the silent run to be declared Lost",
    )
    settled(settings)

    # Each bad message is one dead letter: the sink's when it cannot store it, the processors' when
    # only they refuse it (a rank outside its world size: the sink stored the tag).
    dead = sql(settings, "SELECT key, stage, reason FROM dead_letters ORDER BY key")
    assert dead[["key", "stage"]].values.tolist() == [
        ["k1", "sink"],
        ["k2", "sink"],
        ["k3", "sink"],
        ["x", "processor"],
    ]
    assert "not a msgpack" in dead["reason"][0] and "unknown event kind" in dead["reason"][1]
    assert "does not match run id" in dead["reason"][2] and "does not fit world size" in dead["reason"][3]
    lost = alerts(settings)
    assert lost[["run_id", "rule"]].values.tolist() == [["silent", "lost"]]
    # query.fleet reads the processors' verdict (their 3 s timeout); it does not decide again from raw points
    fleet = query.fleet(lost_after_seconds=1e9, settings=settings)
    assert fleet["lost"][["run_id", "source"]].values.tolist() == [["silent", "processors"]]
    # The run's open buckets were flushed when it was declared lost: rollups are complete.
    check_rollups_and_summaries(settings)
