"""The sink worker: Kafka consumer group -> column batches -> ClickHouse -> commit.

Commit protocol, per partition, strictly in this order:

1. **intent**: record in ``sink_batches`` which offsets the batch covers;
2. **insert**: each table's rows with ``insert_deduplication_token`` =
   ``topic:partition:first-last``;
3. **commit** ``last + 1`` to Kafka.

Every partition due at a flush (and every partition close to due: it joins, see
:mod:`.batching`) shares that flush's intent insert, and, between the inserts and the
commit, one ``producer_streams`` insert that marks the producer sequence numbers of all
its landed batches: each ClickHouse insert costs milliseconds of CPU however small, so
per-flush rather than per-partition bookkeeping is most of what batching saves.

A crash anywhere replays from the last commit.  The replaying worker (this one
or another after a rebalance) finds the intent for that first offset, cuts the
batch at the same last offset, and so sends the same token: ClickHouse drops the
insert it already has.  Nothing is lost (commit follows insert) and nothing is
duplicated (same batch, same token).  A rebalance waits for a flush in progress
(``on_partitions_revoked`` takes the flush lock), so a partition's next owner
always sees the intents of the batches its last owner wrote.

Batches are cut per partition by rows, bytes and age (:mod:`.batching`); one
poll returns at most ``max_poll_records`` records of at most ``fetch_max_bytes``.

Errors (classified once, in :func:`fleetlog.store.client.classify`):

* a record that cannot be decoded or converted -- whatever the exception -- is a
  dead letter with the reason (:class:`~fleetlog.sinks.rows.TableBuilder`), and so
  is derived ``rows`` on an SDK topic (forged);
* rows ClickHouse refuses (``DataRejected``), or that Arrow cannot put in one
  column, are isolated by halving the batch until the records at fault are found;
  those go to ``dead_letters`` with the reason, the rest land, and the partition
  moves on;
* anything else pauses every partition and retries the same batches with
  backoff (Kafka's retention is the buffer): quietly for overload and outages,
  loudly for errors an operator must fix (permissions, a missing table).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from clickhouse_connect.driver.client import Client
from fleetlog.sinks.batching import Backoff, BatchLimits, PartitionBuffer, batch_token
from fleetlog.sinks.rows import Record, StreamKey, TableBuilder

from fleetlog.config import Settings
from fleetlog.errors import StoreError
from fleetlog.store.client import DataRejected, classify

__all__ = ["SinkWorker"]

log = logging.getLogger("fleetlog.sink")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.worker.flush_lock:  # a batch in flight finishes (or fails) before its partition moves
            for tp in revoked:  # uncommitted: the next owner replays them
                self.worker.pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.worker._landed.clear()  # another worker may have landed more meanwhile
        self.worker.stats["rebalances"] += 1
        log.info("sink assigned %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class SinkWorker:
    """One member of the ``fleetlog-sink`` consumer group."""

    def __init__(
        self,
        settings: Settings,
        store: Client,
        *,
        group_id: str = "fleetlog-sink",
        instance_id: str | None = None,
        max_poll_records: int = 2_000,
    ) -> None:
        self.settings = settings
        self.store = store
        self.group_id = group_id
        self.instance_id = instance_id or None
        self.max_poll_records = max_poll_records
        self.limits = BatchLimits(
            max_rows=settings.sink_batch_rows,
            max_bytes=settings.sink_batch_bytes,
            max_seconds=settings.sink_batch_seconds,
        )
        # The processors' derived rows wait longer: each insert has a fixed cost of milliseconds, and a
        # partition of derived rows touches several tables, while charts read their raw tail meanwhile.
        self.derived_limits = dataclasses.replace(self.limits, max_seconds=settings.sink_derived_batch_seconds)
        self.pending: dict[TopicPartition, PartitionBuffer] = {}
        self.stats: Counter[str] = Counter()
        self.flush_lock = asyncio.Lock()
        self._landed: dict[StreamKey, int] = {}
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._paused = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush what is pending and leave the group."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group_id,
            group_instance_id=self.instance_id,
            client_id=self.instance_id or self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(4 << 20, 2 * s.max_message_bytes),
            fetch_max_bytes=max(8 << 20, min(64 << 20, self.limits.max_bytes)),
            **s.kafka_security(),
        )
        # The processors' derived rows and dead letters arrive as `rows` events on their own topics.
        topics = [s.metrics_topic, s.events_topic, s.derived_topic, s.alerts_topic, s.dead_letter_topic]
        consumer.subscribe(topics, listener=_Rebalance(self))
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

    def _accept(self, fetched: dict[TopicPartition, list]) -> None:
        now = time.monotonic()
        for tp, messages in fetched.items():
            # A null value (a tombstone) is an empty message: decoding refuses it like any bad bytes.
            records = [Record(tp.topic, tp.partition, m.offset, m.key, m.value or b"") for m in messages]
            self.pending.setdefault(tp, PartitionBuffer()).append(records, now)
            self.stats["records_received"] += len(records)

    async def _maybe_flush(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            return
        if self._paused or any(p.due(self._limits(tp), now) for tp, p in self.pending.items()):
            await self._flush(consumer)

    async def _flush(self, consumer: AIOKafkaConsumer, *, final: bool = False) -> None:
        """Insert and commit every due batch (every batch when ``final``); pause on failure."""
        everything = final or self._paused
        async with self.flush_lock:
            try:
                while await self._flush_once(consumer, everything):
                    if not any(
                        p.full(self._limits(tp)) or (everything and p.records) for tp, p in self.pending.items()
                    ):
                        break
            except StoreError as exc:
                self._pause(consumer, exc)
                return
            if self._paused:
                self._paused, self._retry_at = False, 0.0
                self._backoff.reset()
                consumer.resume(*consumer.assignment())
                self.stats["paused"] = 0
                log.info("ClickHouse accepts inserts again; resumed consuming")

    def _pause(self, consumer: AIOKafkaConsumer, exc: StoreError) -> None:
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self._paused = True
        consumer.pause(*consumer.assignment())
        self.stats["store_retries"] += 1
        self.stats["paused"] = 1
        if exc.retriable:
            log.warning("ClickHouse insert failed (%s); paused, retry in %.1fs", exc, delay)
        else:
            self.stats["store_errors"] += 1
            log.error("ClickHouse refuses the sink (%s); paused, retry in %.1fs -- this needs fixing", exc, delay)

    async def _flush_once(self, consumer: AIOKafkaConsumer, everything: bool) -> bool:
        """One batch per due partition: intents, inserts, commit. False when nothing was due."""
        now = time.monotonic()
        batches: dict[TopicPartition, list[Record]] = {}
        # Partitions close to due join this flush: they share its intent and producer_streams inserts.
        started = everything or any(p.due(self._limits(tp), now) for tp, p in self.pending.items())
        for tp, p in sorted(self.pending.items(), key=lambda item: self._insert_order(item[0])):
            if not (everything and p.records) and not (started and p.joins(self._limits(tp), now)):
                continue
            if not p.loaded:
                p.intents = await asyncio.to_thread(self._recorded_intents, tp, p.records[0].offset)
                p.loaded = True
            batch = p.take(self._limits(tp))
            if batch:
                batches[tp] = batch
        if not batches:
            return False
        self.stats["flush_rounds"] += 1
        if not await self._fence(consumer, batches):
            return True
        # Re-writing an intent that a replay found is harmless (ReplacingMergeTree).
        try:
            await asyncio.to_thread(self._write_intents, list(batches.values()))
        except StoreError:
            for tp, batch in batches.items():
                self.pending[tp].put_back(batch)
            raise
        done: list[TopicPartition] = []
        landed: dict[StreamKey, int] = {}
        failure: StoreError | None = None
        try:
            for tp, batch in batches.items():
                landed.update(await asyncio.to_thread(self._insert_data, batch))
                done.append(tp)
        except StoreError as exc:
            failure = exc
        # One producer_streams insert for every batch that landed, before any of them is committed.
        if landed:
            try:
                await asyncio.to_thread(self._write_landed, landed, [batches[tp] for tp in done])
            except StoreError as exc:
                failure, done = failure or exc, []  # uncommitted: the retry re-sends them, deduplicated
        for tp, batch in batches.items():
            if tp not in done:  # keep it for the retry, same cut
                self.pending[tp].put_back(batch)
        await self._commit(consumer, {tp: batches[tp] for tp in done})
        if failure is not None:
            raise failure
        return True

    async def _commit(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]) -> None:
        """Commit what landed; if Kafka refuses, read those partitions again from the batch (a replay)."""
        if not batches:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(b[-1].offset + 1, "") for tp, b in batches.items()})
        except (CommitFailedError, KafkaError) as exc:
            # Typically the group moved on without us; the next owner replays from the last commit.
            log.warning("offset commit failed (%s); those batches will be replayed", exc)
            self.stats["commit_failed"] += 1
            self._forget(consumer, batches)
            return
        self.stats["batches_committed"] += len(batches)

    async def _fence(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]) -> bool:
        """Prove the group still gives us these partitions, right before writing anything for them.

        A worker that stalled (a long pause, a lost network) may have had its partitions handed
        to another sink, which then cut its own batches: writing ours now could land rows twice.
        Committing the offset we already stand at changes nothing, but the group refuses it from
        a member of an older generation, so a stale worker stops here and drops its batches.
        """
        try:
            await consumer.commit({tp: OffsetAndMetadata(b[0].offset, "") for tp, b in batches.items()})
        except (CommitFailedError, KafkaError) as exc:
            log.warning(
                "the group no longer gives us %d partition(s) (%s); leaving them to their owner", len(batches), exc
            )
            self.stats["fenced"] += 1
            self._forget(consumer, batches)
            return False
        return True

    def _forget(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]) -> None:
        """Drop what we hold for these partitions; if still ours, read them again from the batch's start."""
        assigned = consumer.assignment()
        for tp, batch in batches.items():
            self.pending.pop(tp, None)
            if tp in assigned:
                consumer.seek(tp, batch[0].offset)

    def _recorded_intents(self, tp: TopicPartition, first_offset: int) -> dict[int, int]:
        """Batches a previous owner cut from ``first_offset`` on: a replay cuts them the same way."""
        try:
            rows = self.store.query(
                "SELECT first_offset, max(last_offset) FROM sink_batches FINAL "
                "WHERE topic = {t:String} AND partition = {p:UInt32} AND first_offset >= {o:UInt64} "
                "GROUP BY first_offset",
                parameters={"t": tp.topic, "p": tp.partition, "o": first_offset},
            ).result_rows
        except Exception as exc:
            raise classify(exc) from exc
        intents = {int(first): int(last) for first, last in rows}
        if intents:
            log.info("replaying %s:%d from %d: %d recorded batch(es)", tp.topic, tp.partition, first_offset, len(rows))
            self.stats["replayed_batches"] += len(intents)
        return intents

    def _write_intents(self, batches: list[list[Record]]) -> None:
        now = datetime.now(timezone.utc)
        rows = [[b[0].topic, b[0].partition, b[0].offset, b[-1].offset, now] for b in batches]
        self.stats["inserts"] += 1
        try:
            self.store.insert(
                "sink_batches", rows, column_names=["topic", "partition", "first_offset", "last_offset", "created_at"]
            )
        except Exception as exc:
            raise classify(exc) from exc

    def _high_water(self, keys: set[StreamKey]) -> dict[StreamKey, int]:
        """Highest sequence number already landed per producer stream (cached; -1 if none)."""
        missing = [k for k in keys if k not in self._landed]
        if missing:
            try:
                rows = self.store.query(
                    "SELECT session, run_id, topic, max(max_seq) FROM producer_streams "
                    "WHERE (session, run_id, topic) IN {keys:Array(Tuple(String, String, String))} "
                    "GROUP BY session, run_id, topic",
                    parameters={"keys": missing},
                ).result_rows
            except Exception as exc:
                raise classify(exc) from exc
            found = {(s, r, t): int(seq) for s, r, t, seq in rows}
            for key in missing:
                self._landed[key] = found.get(key, -1)
        return {k: self._landed[k] for k in keys}

    def _insert(self, batch: list[Record]) -> None:
        """Insert one partition's batch and mark its producer streams landed (runs in a thread)."""
        landed = self._insert_data(batch)
        if landed:
            self._write_landed(landed, [batch])

    def _insert_data(self, batch: list[Record]) -> dict[StreamKey, int]:
        """Insert one partition's rows, every table under the batch's token; return the streams it lands.

        ``producer_streams`` is left to the caller (:meth:`_write_landed`), which writes it once for
        every batch of a flush, after their rows and before their commit.
        """
        builder = self._builder(self._high_water)
        builder.add(batch)
        self.stats["duplicates_dropped"] += builder.duplicates
        token = batch_token(batch)
        tables = builder.tables()
        tables.pop("producer_streams", None)
        for table, data in tables.items():
            try:
                self._write(table, data, token)
            except DataRejected as exc:
                if table not in builder.sources:
                    raise StoreError(f"ClickHouse refused the sink's own {table} rows: {exc}") from exc
                self._isolate(table, builder.sources[table], f"insert into {table} refused: {exc}")
                continue
            self._count(table, data.num_rows)
        for table, reason in builder.unbuilt.items():  # rows of several records Arrow cannot join
            log.warning("%s; finding the records at fault", reason)
            self._isolate(table, builder.sources[table], reason)
        return builder.landed

    def _builder(self, high_water: Callable[[set[StreamKey]], dict[StreamKey, int]] | None = None) -> TableBuilder:
        """A builder that refuses derived rows on the SDK's topics (only the processors write those)."""
        s = self.settings
        return TableBuilder(high_water, sdk_topics=(s.metrics_topic, s.events_topic))

    def _write_landed(self, landed: dict[StreamKey, int], batches: list[list[Record]]) -> None:
        """Record the highest sequence number landed per producer stream, for the batches just inserted.

        Rows only ever raise ``max_seq`` (ReplacingMergeTree(max_seq)), so writing them again on a
        replay is harmless; the token (the batches' own) still spares the table a repeat.
        """
        marker = TableBuilder()
        marker.landed = landed
        data = marker.tables()["producer_streams"]
        try:
            self._write("producer_streams", data, ",".join(batch_token(b) for b in batches))
        except DataRejected as exc:
            raise StoreError(f"ClickHouse refused the sink's own producer_streams rows: {exc}") from exc
        self._count("producer_streams", data.num_rows)
        self._landed.update(landed)

    def _count(self, table: str, rows: int) -> None:
        self.stats[f"rows:{table}"] += rows
        if table == "metric_points":
            self.stats["points_inserted"] += rows

    def _write(self, table: str, data: object, token: str) -> None:
        self.stats["inserts"] += 1
        try:
            self.store.insert_arrow(table, data, settings={"insert_deduplication_token": token})
        except Exception as exc:
            raise classify(exc) from exc

    def _isolate(self, table: str, records: list[Record], reason: str) -> None:
        """Find by halving the records whose rows ClickHouse refuses or Arrow cannot build; dead-letter those.

        The rest land; a record found alone goes to ``dead_letters`` with ``reason``.
        Halves are cut the same way on every replay, and each carries its own token.
        """
        if len(records) == 1:
            self._dead_letter(records, reason)
            return
        mid = len(records) // 2
        for half in (records[:mid], records[mid:]):
            part = self._builder()
            part.add(half)
            data = part.tables().get(table)
            if table in part.unbuilt:
                self._isolate(table, half, part.unbuilt[table])
                continue
            if data is None:
                continue
            try:
                self._write(table, data, batch_token(half) + "/split")
            except DataRejected as exc:
                self._isolate(table, half, f"insert into {table} refused: {exc}")
                continue
            self._count(table, data.num_rows)

    def _dead_letter(self, batch: list[Record], reason: str) -> None:
        """Park records ClickHouse will never accept, so the partition moves on."""
        log.error("%s; %d record(s) go to dead_letters", reason, len(batch))
        builder = TableBuilder()
        for rec in batch:
            builder.dead(rec, reason)
        self._write("dead_letters", builder.tables()["dead_letters"], batch_token(batch) + "/dead")
        self.stats["dead_letters"] += len(batch)
