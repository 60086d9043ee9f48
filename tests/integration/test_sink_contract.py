"""The sink contract through a real broker: a sink that pushes back loses and repeats nothing.

The worker runs in this process against the session's Kafka; the sink is an in-memory one
that refuses its first writes with :class:`SinkBackpressure`, as the ClickHouse sink does
while the store is away.  Every record must then be written exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fleetlog.sinks.base import Batch, Sink, SinkBackpressure
from fleetlog.sinks.worker import SinkWorker

from fleetlog.config import Settings
from fleetlog.topics import ensure_topics

RECORDS = 300


class _PushingBack(Sink):
    """Keeps what it is given; refuses its first ``refusals`` writes, asking for a short wait."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.written: list[tuple[int, int]] = []  # (partition, offset), in write order

    def write(self, batches: Sequence[Batch]) -> None:
        if self.refusals:
            self.refusals -= 1
            raise SinkBackpressure("the store is away (test)", retry_after_seconds=0.2)
        for batch in batches:
            self.written += [(r.partition, r.offset) for r in batch.records]
        self.stats["records_written"] += sum(len(b) for b in batches)


async def _produce(settings: Settings) -> dict[int, int]:
    """RECORDS messages over the metrics topic's partitions; the end offset of each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(settings.metrics_topic, b"x", key=f"run-{i % 16}".encode()) for i in range(RECORDS)]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for m in metadata:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    return ends


async def _committed(settings: Settings, group: str, partitions: Sequence[int]) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=group)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(settings.metrics_topic, p)) for p in partitions}
    finally:
        await consumer.stop()


def test_backpressure_pauses_seeks_back_and_resumes_without_loss_or_repeats(settings: Settings) -> None:
    s = settings.replace(sink_batch_seconds=0.1)
    sink = _PushingBack(refusals=3)
    worker = SinkWorker(s, sink, group_id=f"contract-{uuid.uuid4().hex[:8]}")

    async def scenario() -> dict[int, int]:
        await ensure_topics(s)
        ends = await _produce(s)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 60
        while len(sink.written) < RECORDS or worker.stats["paused"]:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"written {len(sink.written)} of {RECORDS}; {dict(worker.stats)}"
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return ends

    ends = asyncio.run(scenario())
    expected = sorted((p, o) for p, end in ends.items() for o in range(end))
    assert sorted(sink.written) == expected  # every record once: none lost, none twice
    stats = worker.stats
    assert stats["store_retries"] == 3 and stats["paused"] == 0 and stats["records_written"] == RECORDS
    assert stats["records_received"] > RECORDS  # what was read before each refusal was read again
    assert asyncio.run(_committed(s, worker.group_id, sorted(ends))) == ends
