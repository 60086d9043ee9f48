"""Processor throughput on this machine: a backlog of points, the sink and processors working it off together.

``python -m bench.processor_throughput --points 10000000`` writes the backlog
straight to Kafka (encoded like the SDK does, zstd), starts a sink and
``--workers`` processors, and reports how fast the processors consumed it while
the sink was inserting the same points and the derived rows.  It uses the
broker at ``FLEETLOG_KAFKA`` if one answers there, else starts its own.
``--core`` measures the pure core alone (decoded batches in, rows out, one core).

A benchmark driver, not a stage: it starts the local stack (:mod:`fleetlog.stack`), so it
lives here beside the other benchmarks, where no stage imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer
from fleetlog.processors.app import app_id
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine

from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, decode, encode_metrics
from fleetlog.lag import consumer_lag
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack
from fleetlog.topics import ensure_topics

__all__ = ["main"]


async def _backlog(settings: Settings, *, points: int, runs: int, metrics: int, ranks: int) -> float:
    """Produce ``points`` points for ``runs`` runs; return the seconds it took."""
    names = ["train/loss", "sys/gpu_util", *[f"layers/{i:02d}/grad_norm" for i in range(metrics - 2)]]
    steps_per_message = 30_000 // metrics
    rng = np.random.default_rng(0)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        compression_type="zstd",
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        acks="all",
    )
    await producer.start()
    started = time.perf_counter()
    try:
        per_stream = points // (runs * ranks)
        sent, seq = 0, 0
        futures = []
        while sent < per_stream:
            n_steps = min(steps_per_message, (per_stream - sent) // metrics) or 1
            step = np.repeat(np.arange(sent // metrics, sent // metrics + n_steps), metrics)
            idx = np.tile(np.arange(metrics, dtype=np.uint32), n_steps)
            ts = (time.time() * 1000 + step).astype(np.int64)
            for run in range(runs):
                for rank in range(ranks):
                    env = Envelope(
                        kind="metrics",
                        run_id=f"bench-{run}",
                        experiment="bench",
                        source=Source(host=f"node{rank % 2}", rank=rank, world_size=ranks),
                        seq=seq,
                    )
                    value = 1.0 + 0.05 * rng.standard_normal(len(step))
                    for _, msg in encode_metrics(env, names, idx, step, ts, value):
                        futures.append(await producer.send(settings.metrics_topic, msg, key=env.key))
                        seq += 1
            sent += n_steps * metrics
            if len(futures) > 200:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def _start_worker(settings: Settings) -> subprocess.Popen:
    env = settings.child_env()
    log = open(settings.home / "processors.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlog", "processor", "--log-level", "WARNING"], env=env, stdout=log, stderr=log
    )
    status = settings.state_dir / f"processor-{proc.pid}.json"
    deadline = time.monotonic() + 120
    while not status.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"processor did not start; see {settings.home / 'processors.log'}")
        time.sleep(0.2)
    return proc


def _messages(names: list[str], run: str, first_step: int, steps: int, rank: int, world: int) -> Envelope:
    step = np.repeat(np.arange(first_step, first_step + steps), len(names))
    env = Envelope(kind="metrics", run_id=run, source=Source(host="h", rank=rank, world_size=world))
    idx = np.tile(np.arange(len(names), dtype=np.uint32), steps)
    value = 1.0 + 0.05 * np.random.default_rng(first_step + rank).standard_normal(len(step))
    [(_, msg)] = encode_metrics(env, names, idx, step, (step + 1_700_000_000_000).astype(np.int64), value)
    return decode(msg)


def core(*, points: int, runs: int, metrics: int, ranks: int) -> dict:
    """Points per second through ``RunEngine`` alone: batches of 8 messages of 1,000 steps per run."""
    names = ["train/loss", "sys/gpu_util", *[f"layers/{i:02d}/grad_norm" for i in range(metrics - 2)]]
    engine, store = RunEngine(ProcessorConfig()), {}
    steps, done, elapsed, offset = 1000, 0, 0.0, 0
    batch_index = 0
    while done < points:
        for run in range(runs):
            batch = []
            for k in range(8 // ranks):
                for rank in range(ranks):
                    first = (batch_index * (8 // ranks) + k) * steps
                    batch.append((offset, _messages(names, f"run{run}", first, steps, rank, ranks)))
                    offset += 1
            started = time.perf_counter()
            out = engine.process(f"run{run}", 0, batch, [], now=time.time(), get=store.get)
            store.update({k: v for k, v in out.writes.items() if v is not None})
            elapsed += time.perf_counter() - started
            done += sum(len(env.metrics) for _, env in batch)
        batch_index += 1
    return {"mode": "core", "points": done, "ranks": ranks, "points_per_second": round(done / elapsed)}


def _lag(settings: Settings, group: str, topics: list[str]) -> int:
    return sum(asyncio.run(consumer_lag(settings, group, topics)).values())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--metrics", type=int, default=30)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--core", action="store_true", help="the pure core alone, no Kafka")
    args = parser.parse_args(argv)
    if args.core:
        report = core(points=args.points, runs=args.runs, metrics=args.metrics, ranks=args.ranks)
        print(json.dumps(report))
        return report

    home = Path(tempfile.mkdtemp(prefix="fleetlog-bench-"))
    env = Settings.from_env()
    broker = None
    try:
        asyncio.run(ensure_topics(env, timeout_seconds=3))
        bootstrap = env.kafka.bootstrap
    except Exception:
        broker = LocalKafka(state_dir=home / "kafka", port=free_port())
        broker.start()
        bootstrap = broker.bootstrap
    settings = Settings.build(
        home=home, kafka_bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}", http_port=free_port()
    )
    stack = LocalStack(settings)
    workers: list[subprocess.Popen] = []
    try:
        asyncio.run(ensure_topics(settings))
        produce_s = asyncio.run(
            _backlog(settings, points=args.points, runs=args.runs, metrics=args.metrics, ranks=args.ranks)
        )
        stack.start(SINK)
        started = time.perf_counter()
        workers += [_start_worker(settings) for _ in range(args.workers)]
        ready = time.perf_counter() - started
        source = [settings.metrics_topic, settings.events_topic]
        done = None
        while time.perf_counter() - started < 900:
            if done is None and _lag(settings, app_id(settings), source) == 0:
                done = time.perf_counter() - started
            if (
                done is not None
                and _lag(settings, "fleetlog-sink", [*source, settings.derived_topic, settings.alerts_topic]) == 0
            ):
                break
            time.sleep(0.5)
        sink_done = time.perf_counter() - started
        report = {
            "points": args.points,
            "runs": args.runs,
            "metrics": args.metrics,
            "ranks": args.ranks,
            "workers": args.workers,
            "produce_seconds": round(produce_s, 1),
            "processor_ready_seconds": round(ready, 1),
            "processor_seconds": None if done is None else round(done, 1),
            "processor_points_per_second": None if done is None else round(args.points / (done - ready)),
            "sink_and_processor_seconds": round(sink_done, 1),
        }
        print(json.dumps(report, indent=2))
        return report
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        stack.stop(SINK)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
