"""The sink worker, the Kafka side of a sink: poll, cut, fence, write, commit, pause.

One member of the ``fleetlog-sink`` consumer group.  It reads the five topics, cuts
each partition's records into batches by rows, bytes and age (:mod:`.batching`; one
poll returns at most ``max_poll_records`` records of at most ``fetch_max_bytes``),
proves it still owns the partitions (:meth:`SinkWorker._fence`), hands every due
batch of a flush to the :class:`~fleetlog.sinks.base.Sink` in one ``write``, and then
commits ``last + 1`` for each.  The commit protocol, and why a crash anywhere loses
and duplicates nothing, is written out in :mod:`.base`.

* A replay cuts where the crashed attempt did: before a partition's first batch the
  worker asks the sink for the cuts recorded from its last commit on.
* A rebalance waits for a flush in progress (``on_partitions_revoked`` takes the flush
  lock), so a partition's next owner always sees the intents of the batches its last
  owner wrote.
* :class:`~fleetlog.sinks.base.SinkBackpressure` pauses every partition, seeks each
  back to its last commit and drops what was read; after ``retry_after_seconds`` the
  worker resumes, reads the same records again, and flushes them as soon as they are
  back.  ``stats["paused"]`` stays 1 until a write succeeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from fleetlog.sinks.base import Batch, Sink, SinkBackpressure
from fleetlog.sinks.batching import BatchLimits, PartitionBuffer

from fleetlog.config import Settings
from fleetlog.events import Record

__all__ = ["SinkWorker"]

log = logging.getLogger("fleetlog.sink")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: SinkWorker, consumer: AIOKafkaConsumer) -> None:
        self.worker, self.consumer = worker, consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.worker.flush_lock:  # a batch in flight finishes (or fails) before its partition moves
            for tp in revoked:  # uncommitted: the next owner replays them
                self.worker.pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.worker.sink.on_assigned([(tp.topic, tp.partition) for tp in assigned])
        if self.worker.paused and assigned:  # still waiting for the store: new partitions wait too
            self.consumer.pause(*assigned)
        self.worker.counters["rebalances"] += 1
        log.info("sink assigned %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class SinkWorker:
    """Consumes the topics into ``sink``, exactly once; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        group_id: str = "fleetlog-sink",
        instance_id: str | None = None,
        max_poll_records: int = 2_000,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.group_id = group_id
        self.instance_id = instance_id or None
        self.max_poll_records = max_poll_records
        self.limits = BatchLimits(
            max_rows=settings.sink.batch_rows,
            max_bytes=settings.sink.batch_bytes,
            max_seconds=settings.sink.batch_seconds,
        )
        # The processors' derived rows wait longer: each insert has a fixed cost of milliseconds, and a
        # partition of derived rows touches several tables, while charts read their raw tail meanwhile.
        self.derived_limits = dataclasses.replace(self.limits, max_seconds=settings.sink.derived_batch_seconds)
        self.pending: dict[TopicPartition, PartitionBuffer] = {}
        self.counters: Counter[str] = Counter()
        self.flush_lock = asyncio.Lock()
        self.paused = False  # partitions paused until _retry_at
        self._retrying = False  # resumed after backpressure, no write has succeeded since
        self._retry_at = 0.0

    @property
    def stats(self) -> Counter[str]:
        """The worker's counters and its sink's, as ``fleetlog status`` shows them."""
        merged = Counter(self.sink.stats)
        merged.update(self.counters)
        return merged

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush what is pending and leave the group."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka.bootstrap,
            group_id=self.group_id,
            group_instance_id=self.instance_id,
            client_id=self.instance_id or self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(4 << 20, 2 * s.kafka.max_message_bytes),
            fetch_max_bytes=max(8 << 20, min(64 << 20, self.limits.max_bytes)),
            **s.kafka.security_kwargs(),
        )
        # The processors' derived rows and dead letters arrive as `rows` events on their own topics.
        topics = [s.metrics_topic, s.events_topic, s.derived_topic, s.alerts_topic, s.dead_letter_topic]
        consumer.subscribe(topics, listener=_Rebalance(self, consumer))
        await consumer.start()
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(timeout_ms=100, max_records=self.max_poll_records)
                self._accept(fetched)
                await self._maybe_flush(consumer)
            await self._flush(consumer, final=True)
        finally:
            await consumer.stop()

    def _limits(self, tp: TopicPartition) -> BatchLimits:
        return self.derived_limits if tp.topic == self.settings.derived_topic else self.limits

    def _insert_order(self, tp: TopicPartition) -> int:
        """Raw points first in a flush: they are what a live chart waits for; derived rows last."""
        s = self.settings
        return {s.metrics_topic: 0, s.events_topic: 1}.get(tp.topic, 2)

    def _accept(self, fetched: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        now = time.monotonic()
        for tp, messages in fetched.items():
            # A null value (a tombstone) is an empty message: decoding refuses it like any bad bytes.
            records = [Record(tp.topic, tp.partition, m.offset, m.key, m.value or b"") for m in messages]
            self.pending.setdefault(tp, PartitionBuffer()).append(records, now)
            self.counters["records_received"] += len(records)

    async def _maybe_flush(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if self.paused:
            if now < self._retry_at:
                return
            self.paused, self._retrying = False, True
            consumer.resume(*consumer.assignment())
        if any(p.due(self._limits(tp), now) or (self._retrying and p.records) for tp, p in self.pending.items()):
            await self._flush(consumer)

    async def _flush(self, consumer: AIOKafkaConsumer, *, final: bool = False) -> None:
        """Write and commit every due batch (every batch when ``final`` or retrying); pause on backpressure."""
        everything = final or self._retrying
        async with self.flush_lock:
            try:
                while await self._flush_once(consumer, everything):
                    if not any(
                        p.full(self._limits(tp)) or (everything and p.records) for tp, p in self.pending.items()
                    ):
                        break
            except SinkBackpressure as exc:
                self._pause(consumer, exc)

    async def _flush_once(self, consumer: AIOKafkaConsumer, everything: bool) -> bool:
        """One batch per due partition: fence, write, commit. False when nothing was due."""
        batches = await self._cut(consumer, everything)
        if not batches:
            return False
        self.counters["flush_rounds"] += 1
        if not await self._fence(consumer, batches):
            return True
        try:
            await asyncio.to_thread(self.sink.write, list(batches.values()))
        except SinkBackpressure:
            self._rewind(consumer, batches)
            raise
        if self._retrying:
            self._retrying = False
            self.counters["paused"] = 0
            log.info("the store accepts writes again; resumed consuming")
        await self._commit(consumer, batches)
        return True

    async def _cut(self, consumer: AIOKafkaConsumer, everything: bool) -> dict[TopicPartition, Batch]:
        """The flush's batches, raw points first; a replayed partition is cut where the sink recorded."""
        now = time.monotonic()
        # Partitions close to due join this flush: they share its intent and producer_streams inserts.
        started = everything or any(p.due(self._limits(tp), now) for tp, p in self.pending.items())
        chosen = [
            (tp, p)
            for tp, p in sorted(self.pending.items(), key=lambda item: self._insert_order(item[0]))
            if (everything and p.records) or (started and p.joins(self._limits(tp), now))
        ]
        try:
            for tp, p in chosen:
                if not p.loaded:
                    p.intents = await asyncio.to_thread(
                        self.sink.recorded_cuts, tp.topic, tp.partition, p.records[0].offset
                    )
                    p.loaded = True
        except SinkBackpressure:
            self._rewind(consumer, {})
            raise
        batches = {tp: p.take(self._limits(tp)) for tp, p in chosen}
        return {tp: Batch(records) for tp, records in batches.items() if records}

    def _pause(self, consumer: AIOKafkaConsumer, exc: SinkBackpressure) -> None:
        delay = exc.retry_after_seconds
        self._retry_at = time.monotonic() + delay
        self.paused, self._retrying = True, False
        consumer.pause(*consumer.assignment())
        self.counters["store_retries"] += 1
        self.counters["paused"] = 1
        if exc.retriable:
            log.warning("the store cannot take the sink's writes (%s); paused, retry in %.1fs", exc, delay)
        else:
            self.counters["store_errors"] += 1
            log.error("the store refuses the sink (%s); paused, retry in %.1fs -- this needs fixing", exc, delay)

    def _rewind(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Batch]) -> None:
        """Seek every partition back to its last commit and drop what was read: it is read again."""
        starts = {tp: b.first_offset for tp, b in batches.items()}  # taken out of pending, so earliest
        for tp, p in self.pending.items():
            if p.records:
                starts.setdefault(tp, p.records[0].offset)
        self.pending.clear()
        assigned = consumer.assignment()
        for tp, offset in starts.items():
            if tp in assigned:
                consumer.seek(tp, offset)

    async def _commit(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Batch]) -> None:
        """Commit what landed; if Kafka refuses, read those partitions again from the batch (a replay)."""
        try:
            await consumer.commit({tp: OffsetAndMetadata(b.last_offset + 1, "") for tp, b in batches.items()})
        except (CommitFailedError, KafkaError) as exc:
            # Typically the group moved on without us; the next owner replays from the last commit.
            log.warning("offset commit failed (%s); those batches will be replayed", exc)
            self.counters["commit_failed"] += 1
            self._forget(consumer, batches)
            return
        self.counters["batches_committed"] += len(batches)

    async def _fence(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Batch]) -> bool:
        """Prove the group still gives us these partitions, right before writing anything for them.

        A worker that stalled (a long pause, a lost network) may have had its partitions handed
        to another sink, which then cut its own batches: writing ours now could land rows twice.
        Committing the offset we already stand at changes nothing, but the group refuses it from
        a member of an older generation, so a stale worker stops here and drops its batches.
        """
        try:
            await consumer.commit({tp: OffsetAndMetadata(b.first_offset, "") for tp, b in batches.items()})
        except (CommitFailedError, KafkaError) as exc:
            log.warning(
                "the group no longer gives us %d partition(s) (%s); leaving them to their owner", len(batches), exc
            )
            self.counters["fenced"] += 1
            self._forget(consumer, batches)
            return False
        return True

    def _forget(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Batch]) -> None:
        """Drop what we hold for these partitions; if still ours, read them again from the batch's start."""
        assigned = consumer.assignment()
        for tp, batch in batches.items():
            self.pending.pop(tp, None)
            if tp in assigned:
                consumer.seek(tp, batch.first_offset)
