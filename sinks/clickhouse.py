"""The ClickHouse sink: batches -> intents, column inserts, dead letters, producer streams.

Implements :class:`~fleetlog.sinks.base.Sink` (its docstring has the commit protocol)
over a clickhouse-connect ``Client``, in-process chDB or a server alike.  Errors are
classified once, in :func:`fleetlog.store.client.classify`:

* a record that cannot be decoded or converted -- whatever the exception -- is a
  dead letter with the reason (:class:`~fleetlog.sinks.rows.TableBuilder`), and so
  is derived ``rows`` on an SDK topic (forged);
* rows ClickHouse refuses (``DataRejected``), or that Arrow cannot put in one
  column, are isolated by halving the batch until the records at fault are found;
  those go to ``dead_letters`` with the reason, the rest land, and the partition
  moves on;
* anything else is :class:`~fleetlog.sinks.base.SinkBackpressure`, with a delay from
  one :class:`~fleetlog.retry.Backoff` that a successful write resets: quietly
  retriable for overload and outages, not for errors an operator must fix
  (permissions, a missing table).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from clickhouse_connect.driver.client import Client
from fleetlog.sinks._models import assign_versions, store_lookup
from fleetlog.sinks.base import Batch, Sink, SinkBackpressure, batch_token
from fleetlog.sinks.rows import Record, StreamKey, TableBuilder

from fleetlog.config import Settings
from fleetlog.errors import StoreError
from fleetlog.retry import Backoff
from fleetlog.store.client import DataRejected, classify

__all__ = ["ClickHouseSink"]

log = logging.getLogger("fleetlog.sink")

_T = TypeVar("_T")


class ClickHouseSink(Sink):
    """Writes batches into fleetlog's ClickHouse schema exactly once (see :mod:`.base`)."""

    def __init__(self, settings: Settings, store: Client, *, backoff: Backoff | None = None) -> None:
        super().__init__()
        self.store = store
        # Only the processors write derived rows: on the SDK's topics they are forged.
        self.sdk_topics = (settings.metrics_topic, settings.events_topic)
        self.backoff = backoff or Backoff()
        self._landed: dict[StreamKey, int] = {}

    # -- the contract ------------------------------------------------------------------------
    def write(self, batches: Sequence[Batch]) -> None:
        """Intents for all batches in one insert, then each batch's rows, then one producer_streams insert."""
        self._guarded(lambda: self._write_all(batches))
        self.backoff.reset()  # the store takes inserts again

    def recorded_cuts(self, topic: str, partition: int, first_offset: int) -> dict[int, int]:
        """Batches a previous owner cut from ``first_offset`` on (``sink_batches``): a replay cuts them the same."""
        return self._guarded(lambda: self._recorded_intents(topic, partition, first_offset))

    def on_assigned(self, partitions: Collection[tuple[str, int]]) -> None:
        self._landed.clear()  # another worker may have landed more meanwhile

    def _guarded(self, call: Callable[[], _T]) -> _T:
        """Run ``call``; turn a store failure into backpressure, each one in a row waiting longer."""
        try:
            return call()
        except StoreError as exc:
            delay = self.backoff.next_delay()
            raise SinkBackpressure(str(exc), retry_after_seconds=delay, retriable=exc.retriable) from exc

    # -- one flush ---------------------------------------------------------------------------
    def _write_all(self, batches: Sequence[Batch]) -> None:
        self._write_intents(batches)  # re-writing an intent that a replay found is harmless (ReplacingMergeTree)
        landed: dict[StreamKey, int] = {}
        for batch in batches:
            landed.update(self._insert_rows(batch))
        if landed:
            self._write_landed(landed, batches)

    def _recorded_intents(self, topic: str, partition: int, first_offset: int) -> dict[int, int]:
        try:
            rows = self.store.query(
                "SELECT first_offset, max(last_offset) FROM sink_batches FINAL "
                "WHERE topic = {t:String} AND partition = {p:UInt32} AND first_offset >= {o:UInt64} "
                "GROUP BY first_offset",
                parameters={"t": topic, "p": partition, "o": first_offset},
            ).result_rows
        except Exception as exc:
            raise classify(exc) from exc
        intents = {int(first): int(last) for first, last in rows}
        if intents:
            log.info("replaying %s:%d from %d: %d recorded batch(es)", topic, partition, first_offset, len(rows))
            self.stats["replayed_batches"] += len(intents)
        return intents

    def _write_intents(self, batches: Sequence[Batch]) -> None:
        now = datetime.now(timezone.utc)
        rows = [[b.topic, b.partition, b.first_offset, b.last_offset, now] for b in batches]
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

    def _insert_rows(self, batch: Batch) -> dict[StreamKey, int]:
        """Insert one partition's rows, every table under the batch's token; return the streams it lands.

        ``producer_streams`` is left to :meth:`_write_landed`, which writes it once for every
        batch of a flush, after their rows and before their commit.
        """
        builder = self._builder(self._high_water)
        builder.add(batch.records)
        self.stats["duplicates_dropped"] += builder.duplicates
        tables = builder.tables()
        tables.pop("producer_streams", None)
        for table, data in tables.items():
            try:
                self._insert(table, data, batch.token)
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
        return TableBuilder(high_water, sdk_topics=self.sdk_topics)

    def _write_landed(self, landed: dict[StreamKey, int], batches: Sequence[Batch]) -> None:
        """Record the highest sequence number landed per producer stream, for the batches just inserted.

        Rows only ever raise ``max_seq`` (ReplacingMergeTree(max_seq)), so writing them again on a
        replay is harmless; the token (the batches' own) still spares the table a repeat.
        """
        marker = TableBuilder()
        marker.landed = landed
        data = marker.tables()["producer_streams"]
        try:
            self._insert("producer_streams", data, ",".join(b.token for b in batches))
        except DataRejected as exc:
            raise StoreError(f"ClickHouse refused the sink's own producer_streams rows: {exc}") from exc
        self._count("producer_streams", data.num_rows)
        self._landed.update(landed)

    def _count(self, table: str, rows: int) -> None:
        self.stats[f"rows:{table}"] += rows
        if table == "metric_points":
            self.stats["points_inserted"] += rows

    def _insert(self, table: str, data: object, token: str) -> None:
        if table == "models":  # numbered here, by the partition's one owner: see fleetlog.sinks._models
            data = assign_versions(data, store_lookup(self._query))  # type: ignore[arg-type]
            if not data.num_rows:
                return
        self.stats["inserts"] += 1
        try:
            self.store.insert_arrow(table, data, settings={"insert_deduplication_token": token})
        except Exception as exc:
            raise classify(exc) from exc

    def _query(self, sql: str, parameters: dict) -> list[tuple]:
        try:
            return self.store.query(sql, parameters=parameters).result_rows
        except Exception as exc:
            raise classify(exc) from exc

    # -- records the store refuses ---------------------------------------------------------------
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
                self._insert(table, data, batch_token(half) + "/split")
            except DataRejected as exc:
                self._isolate(table, half, f"insert into {table} refused: {exc}")
                continue
            self._count(table, data.num_rows)

    def _dead_letter(self, records: list[Record], reason: str) -> None:
        """Park records ClickHouse will never accept, so the partition moves on."""
        log.error("%s; %d record(s) go to dead_letters", reason, len(records))
        builder = TableBuilder()
        for rec in records:
            builder.dead(rec, reason)
        self._insert("dead_letters", builder.tables()["dead_letters"], batch_token(records) + "/dead")
        self.stats["dead_letters"] += len(records)
