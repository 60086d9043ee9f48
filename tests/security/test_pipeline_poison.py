"""Poison messages through the real broker: the sink and the processors stay up and the partition moves on.

One ``record`` event nested 1,000 deep once killed the sink with ``RecursionError`` at the
same offset after every restart, so ingestion stopped for everyone.  Here each poison message
goes to partition 0 of an SDK topic and valid points and events follow it on the same
partitions; the same sink and processor processes (same pids) must store every valid one, put
each bad message in ``dead_letters`` exactly once with its reason, and land no forged rows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from poison import deep_record, forged_alert, forged_rollup, huge_declared_length, wide_deep_record
from polling import wait_for, wait_steady

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode, encode_metrics
from fleetlog.lag import consumer_lag
from fleetlog.stack import PROCESSOR, SINK, LocalStack
from fleetlog.topics import ensure_topics

POINTS = 500  # per valid batch

# run id (= key) -> (topic role, value, what the dead letter's reason says)
POISON: dict[str, tuple[str, bytes | None, str]] = {
    "deep": ("events", deep_record("deep"), "more than 64 levels deep"),
    "wide": ("events", wide_deep_record("wide"), "more than 64 levels deep"),
    "huge": ("events", huge_declared_length("huge"), "exceeds max_map_len"),
    "forged-rollup": ("events", forged_rollup("forged-rollup"), "'metric_rollups' came on an SDK topic"),
    "forged-alert": ("metrics", forged_alert("forged-alert"), "'alerts' came on an SDK topic"),
    "tombstone": ("events", None, "empty"),
}


def _points(batch: int) -> bytes:
    env = Envelope(kind="metrics", run_id="good", experiment="poison", source=Source(host="h"), sent_at=time.time())
    steps = np.arange(batch * POINTS, (batch + 1) * POINTS)
    ts = int(time.time() * 1000) + steps
    [(_, message)] = list(encode_metrics(env, ["loss"], np.zeros(POINTS, np.uint32), steps, ts, steps * 0.5))
    return message


def _tag(name: str) -> bytes:
    return encode(Envelope(kind="tags", run_id="good", sent_at=time.time(), body={f"after-{name}": "yes"}))


async def _send(settings: Settings) -> None:
    """Points first, then each poison message followed by points and a tag on partition 0 of both topics."""
    topics = {"metrics": settings.metrics_topic, "events": settings.events_topic}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", max_request_size=8 << 20)
    await producer.start()
    try:
        await producer.send_and_wait(topics["metrics"], _points(0), key=b"good", partition=0)
        for batch, (run_id, (role, value, _)) in enumerate(POISON.items(), start=1):
            await producer.send_and_wait(topics[role], value, key=run_id.encode(), partition=0)
            await producer.send_and_wait(topics["metrics"], _points(batch), key=b"good", partition=0)
            await producer.send_and_wait(topics["events"], _tag(run_id), key=b"good", partition=0)
    finally:
        await producer.stop()


def _settled(settings: Settings) -> bool:
    """Both consumer groups have committed everything (then nothing more can arrive)."""
    s = settings
    source = asyncio.run(consumer_lag(s, f"{s.topics.prefix}-processor", [s.metrics_topic, s.events_topic]))
    topics = [s.metrics_topic, s.events_topic, s.derived_topic, s.alerts_topic, s.dead_letter_topic]
    sink = asyncio.run(consumer_lag(s, "fleetlog-sink", topics))
    return sum(source.values()) + sum(sink.values()) == 0


def _sql(settings: Settings, text: str):
    return query.sql(text, settings=settings)


def _processor_stats(settings: Settings, pid: int) -> dict[str, float]:
    return json.loads((settings.state_dir / f"processor-{pid}.json").read_text())["stats"]


@pytest.fixture
def processor(stack: LocalStack) -> Iterator[int]:
    pid = stack.start(PROCESSOR)
    yield pid
    stack.stop(PROCESSOR)


def test_poison_messages_are_one_dead_letter_each_and_nothing_stops(
    settings: Settings, stack: LocalStack, processor: int
) -> None:
    sink = stack.pid(SINK)
    asyncio.run(ensure_topics(settings))
    asyncio.run(_send(settings))
    total = (len(POISON) + 1) * POINTS

    def landed() -> bool:
        points = _sql(settings, "SELECT count() AS n FROM metric_points WHERE run_id = 'good'")
        tags = _sql(settings, "SELECT count() AS n FROM run_tags WHERE run_id = 'good'")
        return int(points["n"].iloc[0]) == total and int(tags["n"].iloc[0]) == len(POISON)

    wait_for(landed, 120, "the valid points and tags after every poison message to land")
    wait_steady(lambda: _settled(settings), 1.5, 90, "both stages to catch up")

    assert stack.pid(SINK) == sink and stack.pid(PROCESSOR) == processor, "a stage died (or restarted)"
    dead = _sql(settings, "SELECT key, stage, reason FROM dead_letters ORDER BY key")
    assert sorted(dead["key"]) == sorted(POISON), dead  # exactly one each, and nothing else
    for row in dead.itertuples():
        assert row.stage == "sink" and POISON[row.key][2] in row.reason, row
    forged = _sql(
        settings,
        "SELECT (SELECT count() FROM metric_rollups WHERE run_id LIKE 'forged%')"
        " + (SELECT count() FROM alerts WHERE run_id LIKE 'forged%') AS n",
    )
    assert int(forged["n"].iloc[0]) == 0
    stats = _processor_stats(settings, processor)
    assert stats["points"] == total and stats["refused_by_sink"] == len(POISON)
    assert not stats.get("dead_letters")  # the sink has them all: none twice
