"""The sink worker: Kafka consumer group -> column batches -> ClickHouse -> commit.

Commit protocol, per partition, strictly in this order:

1. **intent**: record in ``sink_batches`` which offsets the batch covers;
2. **insert**: each table's rows with ``insert_deduplication_token`` =
   ``topic:partition:first-last``;
3. **commit** ``last + 1`` to Kafka.

A crash anywhere replays from the last commit.  The replaying worker (this one
or another after a rebalance) finds the intent for that first offset, cuts the
batch at the same last offset, and so sends the same token: ClickHouse drops the
insert it already has.  Nothing is lost (commit follows insert) and nothing is
duplicated (same batch, same token).

Backpressure: when ClickHouse fails with a retriable error the worker pauses its
partitions, keeps heartbeating, and retries the same batch with backoff; Kafka's
retention is the buffer.  A batch that can never be inserted goes to
``dead_letters`` with the reason instead of blocking its partition forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from clickhouse_connect.driver.client import Client
from fleetlog.sinks.rows import Record, StreamKey, TableBuilder
from fleetlog.sinks.store import classify

from fleetlog.config import Settings
from fleetlog.errors import StoreError

__all__ = ["SinkWorker"]

log = logging.getLogger("fleetlog.sink")

_BYTES_PER_POINT = 28


@dataclass
class _Pending:
    """Records of one partition read since its last commit."""

    records: list[Record] = field(default_factory=list)
    nbytes: int = 0
    since: float = 0.0
    cut_at: int | None = None
    checked: bool = False

    def take(self) -> list[Record]:
        """Records of the next batch: up to a recorded intent's cut, else everything."""
        if self.cut_at is None:
            batch, self.records = self.records, []
        else:
            batch = [r for r in self.records if r.offset <= self.cut_at]
            if not batch or batch[-1].offset < self.cut_at:
                return []
            self.records = self.records[len(batch) :]
            self.cut_at = None
        self.nbytes = sum(len(r.value) for r in self.records)
        self.since = time.monotonic() if self.records else 0.0
        return batch


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:  # uncommitted: the next owner replays them
            self.worker.pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.worker._landed.clear()  # another worker may have landed more meanwhile
        log.info("sink assigned %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class SinkWorker:
    """One member of the ``fleetlog-sink`` consumer group."""

    def __init__(self, settings: Settings, store: Client, *, group_id: str = "fleetlog-sink") -> None:
        self.settings = settings
        self.store = store
        self.group_id = group_id
        self.pending: dict[TopicPartition, _Pending] = {}
        self.stats: Counter[str] = Counter()
        self._landed: dict[StreamKey, int] = {}
        self._retry_at = 0.0
        self._backoff = 0.5
        self.batch_bytes = settings.sink_batch_rows * _BYTES_PER_POINT

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush what is pending and leave the group."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            **s.kafka_security(),
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 << 20,
            fetch_max_bytes=64 << 20,
        )
        # The processors' derived rows and dead letters arrive as `rows` events on their own topics.
        topics = [s.metrics_topic, s.events_topic, s.derived_topic, s.dead_letter_topic]
        consumer.subscribe(topics, listener=_Rebalance(self))
        await consumer.start()
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(timeout_ms=100, max_records=20_000)
                self._accept(fetched)
                await self._maybe_flush(consumer)
            await self._flush(consumer, force=True)
        finally:
            await consumer.stop()

    def _accept(self, fetched: dict[TopicPartition, list]) -> None:
        now = time.monotonic()
        for tp, messages in fetched.items():
            p = self.pending.setdefault(tp, _Pending())
            if not p.records:
                p.since = now
            for m in messages:
                p.records.append(Record(tp.topic, tp.partition, m.offset, m.key, m.value))
                p.nbytes += len(m.value)
            self.stats["records_received"] += len(messages)

    async def _maybe_flush(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            return
        oldest = min((p.since for p in self.pending.values() if p.records), default=now)
        total = sum(p.nbytes for p in self.pending.values())
        if total >= self.batch_bytes or now - oldest >= self.settings.sink_batch_seconds or self._retry_at:
            await self._flush(consumer)

    async def _flush(self, consumer: AIOKafkaConsumer, *, force: bool = False) -> None:
        try:
            await self._flush_once(consumer)
        except StoreError as exc:
            if not exc.retriable and not force:
                raise
            self.stats["store_retries"] += 1
            self._retry_at = time.monotonic() + self._backoff
            log.warning("ClickHouse insert failed (%s); pausing, retry in %.1fs", exc, self._backoff)
            self._backoff = min(self._backoff * 2, 30.0)
            consumer.pause(*consumer.assignment())
            return
        if self._retry_at:
            self._retry_at, self._backoff = 0.0, 0.5
            consumer.resume(*consumer.assignment())

    async def _flush_once(self, consumer: AIOKafkaConsumer) -> None:
        batches: dict[TopicPartition, list[Record]] = {}
        for tp, p in self.pending.items():
            if not p.records:
                continue
            if not p.checked:
                p.cut_at = await asyncio.to_thread(self._recorded_cut, tp, p.records[0].offset)
                p.checked = True
            batch = p.take()
            if batch:
                batches[tp] = batch
        if not batches:
            return
        # Re-writing an intent that a replay found is harmless (ReplacingMergeTree).
        await asyncio.to_thread(self._write_intents, list(batches.values()))
        for tp, batch in batches.items():
            try:
                await asyncio.to_thread(self._insert, batch)
            except StoreError:
                self.pending[tp].records[:0] = batch  # keep it for the retry, same cut
                self.pending[tp].cut_at = batch[-1].offset
                raise
        await consumer.commit({tp: OffsetAndMetadata(b[-1].offset + 1, "") for tp, b in batches.items()})
        self.stats["batches_committed"] += len(batches)

    def _recorded_cut(self, tp: TopicPartition, first_offset: int) -> int | None:
        rows = self.store.query(
            "SELECT max(last_offset) FROM sink_batches FINAL "
            "WHERE topic = {t:String} AND partition = {p:UInt32} AND first_offset = {o:UInt64}",
            parameters={"t": tp.topic, "p": tp.partition, "o": first_offset},
        ).result_rows
        cut = rows[0][0] if rows else 0
        if cut:
            log.info("replaying %s:%d from %d up to recorded cut %d", tp.topic, tp.partition, first_offset, cut)
            self.stats["replayed_batches"] += 1
        return cut or None

    def _write_intents(self, batches: list[list[Record]]) -> None:
        if not batches:
            return
        now = datetime.now(timezone.utc)
        rows = [[b[0].topic, b[0].partition, b[0].offset, b[-1].offset, now] for b in batches]
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
            rows = self.store.query(
                "SELECT session, run_id, topic, max(max_seq) FROM producer_streams "
                "WHERE (session, run_id, topic) IN {keys:Array(Tuple(String, String, String))} "
                "GROUP BY session, run_id, topic",
                parameters={"keys": missing},
            ).result_rows
            found = {(s, r, t): int(seq) for s, r, t, seq in rows}
            for key in missing:
                self._landed[key] = found.get(key, -1)
        return {k: self._landed[k] for k in keys}

    def _insert(self, batch: list[Record]) -> None:
        builder = TableBuilder(self._high_water)
        token = f"{batch[0].topic}:{batch[0].partition}:{batch[0].offset}-{batch[-1].offset}"
        try:
            builder.add(batch)
            tables = builder.tables()
        except StoreError:
            raise
        except Exception as exc:  # a record we failed to validate must not block its partition forever
            log.exception("building rows failed")
            self._dead_letter(batch, f"sink could not build rows: {type(exc).__name__}: {exc}", token)
            return
        self.stats["duplicates_dropped"] += builder.duplicates
        for table, data in tables.items():
            try:
                self.store.insert_arrow(table, data, settings={"insert_deduplication_token": token})
            except Exception as exc:
                error = classify(exc)
                if error.retriable:
                    raise error from exc
                self._dead_letter(batch, f"insert into {table} failed: {error}", token)
                continue
            self.stats[f"rows:{table}"] += data.num_rows
        self._landed.update(builder.landed)
        self.stats["points_inserted"] += builder.points

    def _dead_letter(self, batch: list[Record], reason: str, token: str) -> None:
        """Park records ClickHouse will never accept, so the partition moves on."""
        log.error("%s; %d records go to dead_letters", reason, len(batch))
        builder = TableBuilder()
        for rec in batch:
            builder.dead(rec, reason)
        data = builder.tables()["dead_letters"]
        try:
            self.store.insert_arrow("dead_letters", data, settings={"insert_deduplication_token": token + ":dead"})
        except Exception as exc:
            raise classify(exc) from exc
        self.stats["dead_letters"] += len(batch)
