"""The sink against a store server that fails: outages, rows it refuses, and a group that rebalances.

All three run on the ``http`` backend: a ``fleetlog store serve`` process plays the ClickHouse
server and sinks write to it over HTTP, so the store can go away while the sinks live on,
and two sinks can share one store.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import numpy as np
from aiokafka import AIOKafkaProducer
from polling import wait_for
from sink_backends import (
    KnownData,
    Sink,
    assert_exactly_once,
    backend_settings,
    produce,
    sink_stats,
    start_backend,
    stop_backend,
    wait_drained,
)

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode, encode_metrics
from fleetlog.stack import SINK, STORE


def _streaming(settings: Settings, data: KnownData, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(produce(settings, data, seconds=seconds)), daemon=True)
    thread.start()
    return thread


async def _poison(settings: Settings, run_id: str) -> None:
    """Two records ClickHouse refuses forever, on the partitions of a run whose good points keep coming."""
    bad_alert = Envelope(
        kind="rows",
        run_id=run_id,
        sent_at=time.time(),
        body={"table": "alerts", "columns": {"run_id": [run_id], "rank": ["not a number"], "rule": ["spike"]}},
    )
    # 200 months of points in one record: more partitions than one INSERT block may touch.
    months = np.arange(200, dtype=np.int64)
    env = Envelope(kind="metrics", run_id=run_id, source=Source(host="t"), sent_at=time.time())
    ts = 1_000_000_000_000 + months * 31 * 86_400_000
    [(_, spread)] = list(encode_metrics(env, ["loss"], np.zeros(200, np.uint32), months, ts, np.ones(200)))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.derived_topic, encode(bad_alert), key=run_id.encode())
        await producer.send_and_wait(settings.metrics_topic, spread, key=run_id.encode())
    finally:
        await producer.stop()


def test_store_outage_pauses_then_resumes_and_refused_rows_become_dead_letters(settings):
    s = backend_settings(settings, "http", sink_batch_rows=50_000, sink_batch_seconds=0.3)
    data = KnownData(runs=3, records=120, points=2_000, prefix="outage")
    stack = start_backend(s)
    try:
        producer = _streaming(s, data, seconds=12)
        wait_for(lambda: sink_stats(s).get("points_inserted", 0) > 0, 30, "the stream to reach the store")
        asyncio.run(_poison(s, data.run_ids()[0]))
        wait_for(lambda: sink_stats(s).get("dead_letters", 0) >= 2, 30, "the two refused records to be parked")
        stack.stop(STORE)  # the "server" goes away mid-stream
        wait_for(lambda: sink_stats(s).get("paused") == 1, 30, "the sink to pause")
        wait_for(lambda: sink_stats(s).get("store_retries", 0) >= 2, 60, "the sink to retry the missing store")
        retries = sink_stats(s)["store_retries"]
        assert stack.pid(SINK) is not None, "the sink must wait for the store, not die"
        stack.start(STORE)
        producer.join(timeout=60)
        wait_drained(s)
        wait_for(lambda: sink_stats(s).get("paused") == 0, 30, "the sink to resume")
        assert_exactly_once(s, data)  # the poisoned partitions moved on: every good point after them landed
        dead = query.sql("SELECT topic, reason FROM dead_letters ORDER BY topic", settings=s)
        assert len(dead) == 2, dead
        assert dead["topic"].tolist() == [s.derived_topic, s.metrics_topic]
        assert "insert into alerts refused" in dead["reason"][0] and "Code: 6" in dead["reason"][0]
        assert "partitions for single INSERT block" in dead["reason"][1]
        alerts = query.sql("SELECT count() AS n FROM alerts", settings=s)
        assert alerts["n"][0] == 0
        print(f"\noutage: sink paused, {retries} retries while the store was down, then resumed; nothing lost")
    finally:
        stop_backend(stack)


def test_two_sinks_racing_through_rebalances_and_a_kill(settings):
    s = backend_settings(settings, "http", sink_batch_rows=20_000, sink_batch_seconds=0.3)
    data = KnownData(runs=8, records=100, points=2_000, prefix="race")  # 8 runs: both sinks get partitions
    stack = start_backend(s)  # store server + sink A
    b = Sink(s, "sink-b")
    try:
        producer = _streaming(s, data, seconds=20)
        wait_for(lambda: sink_stats(s).get("points_inserted", 0) > 0, 30, "the stream to reach the store")
        b.start()  # rebalance: A gives up partitions to B mid-stream
        wait_for(lambda: b.stats().get("records_received", 0) > 0, 60, "sink B to read from its partitions")
        b.kill(signal.SIGKILL)  # B dies mid-batch; its partitions go back to A after its session times out
        b.start()  # at once: the group still counts the dead B as a member
        wait_for(lambda: b.stats().get("rebalances", 0) >= 1, 60, "the new sink B to be given partitions")
        joined = b.stats()["rebalances"]
        stack.stop(SINK)  # A leaves cleanly (flushes, commits, leaves the group)
        wait_for(lambda: b.stats().get("rebalances", 0) > joined, 60, "sink B to take over A's partitions")
        stack.start(SINK)
        producer.join(timeout=60)
        wait_drained(s)
        assert_exactly_once(s, data)
        stats = sink_stats(s)
        assert stats.get("rebalances", 0) >= 3, stats
    finally:
        b.kill(signal.SIGTERM)
        stop_backend(stack)
