"""How fast the sink writes, on both store backends, and what a point then costs on disk.

Run: ``python -m bench.sink_throughput [--points 2000000] [--batch-rows 200000]``

Throughput is the sink's store side, ``ClickHouseSink.write`` as the worker calls it,
one batch a call -- write the intent, decode the Kafka records, build Arrow columns,
insert with the batch's deduplication token -- timed over pre-encoded records (10,000 points a record, as
the SDK sends them), so Kafka's own speed is not in the figure:

* ``chdb``: the embedded store in the sink's process (``chdb:///path``);
* ``http``: a store served by another process (``fleetlog store serve``), written to
  with clickhouse-connect over HTTP, as a sink writes to a ClickHouse server.

With ``--kafka`` it also times the whole sink -- a ``SinkWorker`` consuming a backlog of
those records from a local broker, committing as it goes -- on both backends.

Storage is the real ``metric_points`` schema (all six columns, codecs as in
fleetlog/store/schema.py), one run per series, after ``OPTIMIZE ... FINAL``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from fleetlog.sinks.base import Batch
from fleetlog.sinks.clickhouse import ClickHouseSink
from fleetlog.sinks.rows import Record
from fleetlog.sinks.worker import SinkWorker

from bench.series import SERIES
from fleetlog.config import Settings
from fleetlog.credentials import store_url
from fleetlog.events import Envelope, Source, encode_metrics
from fleetlog.localkafka import free_port
from fleetlog.store.client import open_store

POINTS_PER_RECORD = 10_000


def records(points: int, runs: int = 8) -> list[Record]:
    """Realistic series (loss, LR, GPU utilisation, noise) spread over runs and 4 partitions."""
    out = []
    names = list(SERIES)
    per_run = points // runs
    for run in range(runs):
        values = SERIES[names[run % len(names)]](per_run)
        env = Envelope(kind="metrics", run_id=f"bench-{run}", source=Source(host="bench"), sent_at=time.time())
        steps = np.arange(per_run)
        ts = int(time.time() * 1000) + steps * 50
        idx = np.zeros(per_run, np.uint32)
        for start in range(0, per_run, POINTS_PER_RECORD):
            stop = start + POINTS_PER_RECORD
            sl = slice(start, stop)
            [(_, msg)] = list(encode_metrics(env, ["loss"], idx[sl], steps[sl], ts[sl], values[sl], max_bytes=1 << 30))
            out.append(Record("bench.metrics", run % 4, len(out), f"bench-{run}".encode(), msg))
    return out


def batches(recs: list[Record], batch_rows: int) -> list[list[Record]]:
    per_batch = max(1, batch_rows // POINTS_PER_RECORD)
    by_partition: dict[int, list[Record]] = {}
    for r in recs:
        by_partition.setdefault(r.partition, []).append(r)
    return [part[i : i + per_batch] for part in by_partition.values() for i in range(0, len(part), per_batch)]


def throughput(url: str, recs: list[Record], batch_rows: int) -> tuple[float, float]:
    """Points per second through the worker's insert path, and this process's CPU microseconds per point.

    The CPU figure is what the sink's own process spends (for chdb that includes the engine's
    threads; for http the serving process is not in it): on a shared machine it is steadier than
    wall time, and it is what decides how many points one core can sink.
    """
    client = open_store(url)
    client.command("TRUNCATE TABLE IF EXISTS metric_points")
    sink = ClickHouseSink(Settings(home=Path(tempfile.mkdtemp())), client)
    work = batches(recs, batch_rows)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in work:
        sink.write([Batch(batch)])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    points = sink.stats["points_inserted"]
    assert client.query("SELECT count() FROM metric_points").result_rows[0][0] == points
    client.close()
    return points / elapsed, cpu / points * 1e6


def serve(path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "FLEETLOG_HTTP_PORT": str(port), "FLEETLOG_HOME": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlog", "store", "serve", "--path", f"{path}/store", "--log-level", "WARNING"],
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                # The served store asks for the home's credentials, as a sink's writer logs in.
                home = Settings.build(
                    home=Path(path), http_port=port, clickhouse_url=f"http://127.0.0.1:{port}/fleetlog"
                )
                return proc, store_url(home, "writer")
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("fleetlog store serve did not start")


def kafka_throughput(url: str, recs: list[Record], bootstrap: str) -> tuple[float, float]:
    """Points per second for a sink working off a backlog of ``recs`` in Kafka, commits included,
    and this process's CPU microseconds per point meanwhile."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer

    from fleetlog.topics import ensure_topics

    settings = Settings.build(
        home=Path(tempfile.mkdtemp()), kafka_bootstrap=bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}"
    )
    client = open_store(url)
    client.command("TRUNCATE TABLE IF EXISTS metric_points")

    async def run() -> tuple[float, float]:
        await ensure_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=4 << 20)
        await producer.start()
        try:
            futures = [await producer.send(settings.metrics_topic, r.value, key=r.key) for r in recs]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        total = len(recs) * POINTS_PER_RECORD
        worker = SinkWorker(settings, ClickHouseSink(settings, client))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while not worker.stats["records_received"]:  # joined the group and fetched: start the clock
            await asyncio.sleep(0.005)
        started, cpu = time.perf_counter(), time.process_time()
        while worker.stats["points_inserted"] < total or worker.stats["batches_committed"] == 0:
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stop.set()
        await task
        return total / elapsed, cpu / total * 1e6

    rate = asyncio.run(run())
    client.close()
    return rate


def storage(url: str, points: int) -> dict[str, float]:
    """Bytes per point of metric_points (all columns) for each series, after merging."""
    client = open_store(url, database="storage")
    out = {}
    for name, make in SERIES.items():
        client.command("TRUNCATE TABLE metric_points")
        values = make(points)
        env = Envelope(kind="metrics", run_id="r", source=Source(host="b"), sent_at=time.time())
        steps = np.arange(points)
        ts = int(time.time() * 1000) + np.cumsum(np.random.default_rng(0).integers(40, 60, points))
        recs = [
            Record("b", 0, i, b"r", msg)
            for i, (_, msg) in enumerate(
                encode_metrics(env, ["loss"], np.zeros(points, np.uint32), steps, ts, values, max_bytes=1 << 30)
            )
        ]
        ClickHouseSink(Settings(home=Path(tempfile.mkdtemp())), client).write([Batch(recs)])
        client.command("OPTIMIZE TABLE metric_points FINAL")
        nbytes = client.query(
            "SELECT sum(data_compressed_bytes) FROM system.parts "
            "WHERE database = currentDatabase() AND table = 'metric_points' AND active"
        ).result_rows[0][0]
        out[name] = nbytes / points
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument("--storage-points", type=int, default=1_000_000, help="0: skip the storage figures")
    parser.add_argument("--kafka", action="store_true", help="also time the whole sink over a local broker")
    args = parser.parse_args()
    recs = records(args.points)
    home = tempfile.mkdtemp(prefix="fleetlog-bench-")
    broker = None
    if args.kafka:
        from fleetlog.localkafka import LocalKafka

        broker = LocalKafka(state_dir=Path(home) / "kafka", port=free_port())
        broker.start()
    rates: dict[str, dict[str, tuple[float, float]]] = {"insert path": {}, "whole sink (Kafka)": {}}
    try:
        chdb_url = f"chdb://{home}/direct"
        rates["insert path"]["chdb"] = throughput(chdb_url, recs, args.batch_rows)
        if broker is not None:
            rates["whole sink (Kafka)"]["chdb"] = kafka_throughput(chdb_url, recs, broker.bootstrap)
        proc, url = serve(home)
        try:
            rates["insert path"]["http"] = throughput(url, recs, args.batch_rows)
            if broker is not None:
                rates["whole sink (Kafka)"]["http"] = kafka_throughput(url, recs, broker.bootstrap)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if broker is not None:
            broker.stop()
    names = {"chdb": "chdb (embedded, in process)", "http": "http (store served by a process)"}
    print(f"{args.points:,} points in records of {POINTS_PER_RECORD:,}, {args.batch_rows:,}-row batches:")
    for kind, by_backend in rates.items():
        for backend, (rate, cpu_us) in by_backend.items():
            print(f"  {kind:20s} {names[backend]:34s} {rate:>12,.0f} points/s  {cpu_us:5.2f} us CPU/point")
    if not args.storage_points:
        return
    print(f"metric_points on disk, all columns, {args.storage_points:,} points per series:")
    for name, per_point in storage(f"chdb://{home}/direct", args.storage_points).items():
        print(f"  {name:28s} {per_point:6.2f} bytes/point")


if __name__ == "__main__":
    main()
