"""Helpers for the sink's integration tests: both store backends, known data, waiting on lag.

Backends:

* ``chdb``: the sink owns an embedded chDB store and serves its HTTP endpoint (the default);
* ``http``: ``fleetlog store serve`` owns the store and serves it like a ClickHouse server, and
  the sink writes to it with ``FLEETLOG_CLICKHOUSE_URL=http://...`` -- clickhouse-connect's HTTP
  path, as against a real server.

Known data (:func:`produce`) goes straight to Kafka without a producer session, so no
sequence-number de-duplication can hide a repeated batch: only the sink's commit protocol
(intents + insert deduplication tokens) keeps the counts exact.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaProducer
from polling import wait_for

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode, encode_metrics
from fleetlog.lag import consumer_lag
from fleetlog.stack import SINK, STORE, LocalStack
from fleetlog.topics import ensure_topics

BACKENDS = ["chdb", "http"]
GROUP = "fleetlog-sink"


def backend_settings(settings: Settings, backend: str, **changes: object) -> Settings:
    """The test's settings for a backend: ``http`` writes through a store server on the endpoint port."""
    if backend == "http":
        changes.setdefault("clickhouse_url", f"http://127.0.0.1:{settings.store.http_port}/fleetlog")
    return settings.replace(**changes)


def start_backend(settings: Settings) -> LocalStack:
    """A sink for ``settings``, behind a store server when the backend is ``http``."""
    stack = LocalStack(settings)
    if not settings.store.is_embedded:
        stack.start(STORE)
    stack.start(SINK)
    return stack


def stop_backend(stack: LocalStack) -> None:
    stack.stop(SINK)
    stack.stop(STORE)


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a fleetlog child process reads ``settings`` from."""
    env = {**os.environ, **settings.to_env()}
    return {**env, **extra}


@dataclass
class Sink:
    """A sink process started by hand (a second member of the group), killable by pid."""

    settings: Settings
    name: str
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.settings.state_dir / f"{self.name}.log", "ab")  # noqa: SIM115 -- the child keeps it
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlog", "sink"],
            env=child_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        state = self.settings.state_dir / f"sink-{self.proc.pid}.json"
        wait_for(lambda: state.exists() or self.proc.poll() is not None, timeout, f"{self.name} to start", 0.1)
        assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}"

    def stats(self) -> dict[str, int]:
        """This sink's own counters, from the status file it rewrites every second."""
        import json

        assert self.proc is not None, f"{self.name} was never started"
        try:
            return json.loads((self.settings.state_dir / f"sink-{self.proc.pid}.json").read_text())["stats"]
        except (OSError, ValueError, KeyError):
            return {}

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=60)


def lag(settings: Settings) -> int:
    topics = [settings.metrics_topic, settings.events_topic, settings.derived_topic]
    return sum(asyncio.run(consumer_lag(settings, GROUP, topics)).values())


def wait_drained(settings: Settings, timeout: float = 120.0) -> None:
    wait_for(lambda: lag(settings) == 0, timeout, "the sink to commit everything")


@dataclass(frozen=True)
class KnownData:
    """``runs`` runs x ``records`` Kafka records x ``points`` points, each point's value known."""

    runs: int = 4
    records: int = 200
    points: int = 2_000
    prefix: str = "known"

    def run_ids(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.runs)]

    def values(self, run: int, record: int) -> np.ndarray:
        steps = np.arange(record * self.points, (record + 1) * self.points)
        return (steps % 1000) * 0.25 + run  # exact in binary: sums compare exactly

    def expected(self) -> dict[str, tuple[int, float]]:
        """run id -> (points, sum of values)."""
        return {
            rid: (self.records * self.points, float(sum(self.values(i, j).sum() for j in range(self.records))))
            for i, rid in enumerate(self.run_ids())
        }

    def messages(self, run: int, record: int) -> tuple[bytes, bytes]:
        rid = self.run_ids()[run]
        steps = np.arange(record * self.points, (record + 1) * self.points)
        env = Envelope(kind="metrics", run_id=rid, experiment="known", source=Source(host="t"), sent_at=time.time())
        idx = np.zeros(self.points, np.uint32)
        ts = np.full(self.points, int(time.time() * 1000)) + steps
        [(_, message)] = list(encode_metrics(env, ["loss"], idx, steps, ts, self.values(run, record)))
        return rid.encode(), message


async def produce(
    settings: Settings, data: KnownData, *, seconds: float = 0.0, hurry: threading.Event | None = None
) -> None:
    """Send the known data to the metrics topic, spread over about ``seconds`` (the rest at once after ``hurry``)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pause = seconds / data.records if seconds else 0.0
        for record in range(data.records):
            sends = [data.messages(run, record) for run in range(data.runs)]
            await asyncio.gather(*[await producer.send(settings.metrics_topic, v, key=k) for k, v in sends])
            if pause and not (hurry is not None and hurry.is_set()):
                await asyncio.sleep(pause)  # pacing: the data streams in for ``seconds``, it waits for no state
        for rid in data.run_ids():
            env = Envelope(kind="run", run_id=rid, experiment="known", sent_at=time.time(), body={"status": "Done"})
            await producer.send_and_wait(settings.events_topic, encode(env), key=rid.encode())
    finally:
        await producer.stop()


def landed(settings: Settings, data: KnownData) -> dict[str, tuple[int, float, int]]:
    """run id -> (points, sum of values, distinct steps) as stored."""
    df = query.sql(
        "SELECT run_id, count() AS n, sum(value) AS total, uniqExact(step) AS steps FROM metric_points "
        "WHERE run_id IN {ids:Array(String)} GROUP BY run_id",
        {"ids": data.run_ids()},
        settings=settings,
    )
    return {r.run_id: (int(r.n), float(r.total), int(r.steps)) for r in df.itertuples()}


def assert_exactly_once(settings: Settings, data: KnownData) -> None:
    got = landed(settings, data)
    for rid, (n, total) in data.expected().items():
        assert got.get(rid) == (n, total, n), f"{rid}: stored (points, sum, steps) {got.get(rid)}, sent {(n, total)}"


def sink_stats(settings: Settings) -> dict[str, int]:
    """Counters summed over every sink status file left in the state directory (killed sinks leave theirs)."""
    import json

    totals: dict[str, int] = {}
    for path in settings.state_dir.glob("sink-*.json"):
        try:
            stats = json.loads(path.read_text())["stats"]
        except (OSError, ValueError, KeyError):
            continue
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + int(value)
    return totals
