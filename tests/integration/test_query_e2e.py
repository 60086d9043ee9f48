"""Reading back through the real pipeline: SDK -> Kafka -> sink -> endpoint -> query API and CLI.

One stack for the module; runs are logged through the public SDK, then read with
``fleetlog.query``, the CLI (as subprocesses, the way a user runs them), and
``fleetlog tail`` following a run while another process still logs to it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow.parquet as pq
import pytest
from polling import eventually

import fleetlog
from fleetlog import query as q
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack

LONG = 100_000
FLEETLOG = [sys.executable, "-m", "fleetlog"]


@pytest.fixture(scope="module")
def qs(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("query")
    settings = Settings.build(
        home=home,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"q{uuid.uuid4().hex[:10]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        telemetry_interval_seconds=0,
        outputs_dir="",
    )
    stack = LocalStack(settings)
    stack.start(SINK)
    yield settings
    stack.stop(SINK)


@pytest.fixture(scope="module")
def env(qs: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETLOG_HOME": str(qs.home),
        "FLEETLOG_KAFKA_BOOTSTRAP": qs.kafka.bootstrap,
        "FLEETLOG_TOPIC_PREFIX": qs.topics.prefix,
        "FLEETLOG_HTTP_PORT": str(qs.store.http_port),
        "FLEETLOG_TELEMETRY_INTERVAL_SECONDS": "0",
        "FLEETLOG_OUTPUTS_DIR": "",
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def logged(qs: Settings) -> dict[str, str]:
    """Two finished runs: a 100k-step loss curve with a NaN, and a short one."""
    exp = fleetlog.Experiment("query-e2e", settings=qs)
    ids = {"long": f"long-{uuid.uuid4().hex[:6]}", "short": f"short-{uuid.uuid4().hex[:6]}"}
    steps = np.arange(LONG)
    loss = 2.0 * np.exp(-steps / 20_000) + 0.1
    loss[50_000] = np.nan
    with exp.start_logging(run_id=ids["long"], display_name="long run") as run:
        run.log_params({"lr": 3e-4, "model": {"layers": 12}})
        run.set_tags({"suite": "query"})
        for s in range(LONG):
            run.log("train/loss", loss[s], step=s)
        for s in range(0, LONG, 100):
            run.log("eval/acc", s / LONG, step=s)
    with exp.start_logging(run_id=ids["short"], display_name="short run") as run:
        run.log_params({"lr": 1e-3, "model": {"layers": 12}})
        for s in range(500):
            run.log("train/loss", 1.0 / (s + 1), step=s)
    exp.close()

    def landed() -> None:
        n = q.sql("SELECT count() AS n FROM metric_points WHERE metric = 'train/loss'", settings=qs)["n"].iloc[0]
        assert n == LONG + 500
        assert set(q.runs(experiment="query-e2e", settings=qs)["status"]) == {"Completed"}

    eventually(landed, timeout=90)
    return ids


def test_query_api_over_the_pipeline(qs, logged):
    runs = q.runs(experiment="query-e2e", metrics=["train/loss"], order_by="train/loss.min", settings=qs)
    assert runs["run_id"].tolist() == [logged["short"], logged["long"]]
    long = runs.set_index("run_id").loc[logged["long"]]
    assert long["params.lr"] == 3e-4 and long["params.model.layers"] == 12 and long["tags.suite"] == "query"
    assert q.runs(params={"lr": 1e-3}, settings=qs)["run_id"].tolist() == [logged["short"]]

    series = q.metric(logged["long"], "train/loss", settings=qs)
    res = series.attrs["resolution"]
    assert res["source"] in ("downsample", "rollup") and res["raw_points"] == LONG and res["bucket"] == 100
    assert len(series) == 1000 and series["count"].sum() == LONG and series["nonfinite"].sum() == 1
    assert (series["min"] <= series["max"]).all()
    zoom = q.metric(logged["long"], "train/loss", step_range=(1000, 1999), settings=qs)
    assert zoom.attrs["resolution"]["source"] == "raw" and zoom["step"].tolist() == list(range(1000, 2000))
    both = q.metric([logged["long"], logged["short"]], "train/loss", settings=qs)
    assert set(both["run_id"]) == set(logged.values())

    cmp = q.compare([logged["long"], logged["short"]], ["train/loss"], settings=qs)
    assert "params.lr" in cmp.columns and "params.model.layers" not in cmp.columns
    assert q.summaries(logged["long"], settings=qs).set_index("metric").loc["eval/acc", "count"] == LONG // 100


def test_metric_read_latency_for_a_100k_point_series(qs, logged):
    """Interactive reads: the chart-sized read of a 100k-point series through the endpoint (p50 printed)."""
    timings = {}
    for label, kwargs in (("auto", {}), ("zoom", {"step_range": (40_000, 41_499)})):
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            q.metric(logged["long"], "train/loss", settings=qs, **kwargs)
            samples.append(time.perf_counter() - start)
        timings[label] = statistics.median(samples)
    print(f"metric() p50 over 100k points: auto {timings['auto'] * 1000:.0f} ms, zoom {timings['zoom'] * 1000:.0f} ms")
    assert timings["auto"] < 2.0 and timings["zoom"] < 2.0


def test_cli_lists_shows_and_exports(qs, logged, env, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*FLEETLOG, *args], env=env, capture_output=True, text=True, timeout=120)

    listed = json.loads(cli("runs", "--json", "-e", "query-e2e").stdout)
    assert {r["run_id"] for r in listed} == set(logged.values())
    shown = cli("show", logged["short"])
    assert shown.returncode == 0 and "short run" in shown.stdout and "train/loss" in shown.stdout
    spark = cli("metrics", logged["long"], "train/loss")
    assert spark.returncode == 0 and "█" in spark.stdout
    out = tmp_path / "long.parquet"
    assert cli("export", logged["long"], "-o", str(out)).returncode == 0
    table = pq.read_table(out)
    assert table.num_rows == LONG + LONG // 100
    missing = cli("show", "no-such-run")
    assert missing.returncode == 1 and "fleetlog runs" in missing.stderr
    down = subprocess.run(
        [*FLEETLOG, "runs"], env={**env, "FLEETLOG_HTTP_PORT": str(free_port())}, capture_output=True, text=True
    )
    assert down.returncode == 2 and "fleetlog up" in down.stderr


LIVE = """
import sys, time, fleetlog
run = fleetlog.Experiment("query-live").start_logging(run_id=sys.argv[1])
for step in range(40):
    run.log("loss", 1.0 / (step + 1), step=step)
    if step % 10 == 0:
        run.log_text(f"epoch {step // 10}")
    run.flush()
    time.sleep(0.1)  # pacing: a live run whose points arrive while the tail follows it
run.complete()
"""


def test_tail_follows_a_live_run_until_it_completes(qs, env, tmp_path):
    run_id = f"live-{uuid.uuid4().hex[:6]}"
    script = tmp_path / "live.py"
    script.write_text(LIVE)
    producer = subprocess.Popen([sys.executable, str(script), run_id], env=env)
    try:
        eventually(lambda: q.run(run_id, settings=qs), timeout=60)
        tail = subprocess.run(
            [*FLEETLOG, "tail", run_id, "--json", "--interval", "0.2", "--timeout", "120"],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        assert producer.wait(timeout=60) == 0
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    steps = [e["step"] for e in events if e["kind"] == "metric"]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] == 39, events
    assert events[-1] == {"kind": "status", "status": "Completed"}
    assert any(e["kind"] == "log" and e["message"] == "epoch 3" for e in events), events
