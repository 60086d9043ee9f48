"""The Faust side of one processor worker: batches in, rows out, then state.

Order per batch, which is what makes a crash harmless:

1. compute (in a thread, so heartbeats and fetches keep running);
2. send the derived rows and dead letters and wait until Kafka has them;
3. write the state to the tables (their changelogs), routed to each run's partition;
4. Faust commits the source offsets later, after flushing the producer.

A crash before 3 replays the batch and re-sends the same rows (idempotent:
same keys, same versions); a crash after 3 replays it against state that
already has it, and the per-key ``applied`` offsets skip it.  The clock (``tick``)
takes the same lock and the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from aiokafka.errors import KafkaError
from faust.types import AppT, EventT, TopicT
from fleetlog.processors.core.state import RunState, run_of
from fleetlog.processors.emit import concat_columns, rows_messages
from fleetlog.processors.pipeline import BatchResult, Pipeline
from fleetlog.processors.tables import RoutedTable, routed_to

from fleetlog._status import StatusFile
from fleetlog.config import Settings
from fleetlog.events import DEAD_LETTER_RUN, Record, dead_letter_columns
from fleetlog.retry import Backoff

__all__ = ["ProcessorWorker"]

log = logging.getLogger("fleetlog.processor")

# Written after deletions so a changelog partition never ends in a tombstone that
# compaction may remove (faust-streaming #597: recovery then waits forever).
MARKER = b"\x00fleetlog-partition-marker"
_FINISH_SECONDS = 60.0  # how long a stopping worker may take to finish its batch


def is_run_key(key: bytes) -> bool:
    return run_of(key) is not None


Outgoing = list[tuple[str, bytes, bytes]]  # (topic role, key, value)


class ProcessorWorker:
    """Owns the tables and topics of one Faust app; the agent and the timer call into it."""

    def __init__(
        self,
        app: AppT,
        settings: Settings,
        pipeline: Pipeline,
        *,
        runs: RoutedTable,
        state: RoutedTable,
        derived: TopicT,
        alerts: TopicT,
        dead_letters: TopicT,
    ) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.runs = runs
        self.state = state
        self.topics = {"derived": derived, "alerts": alerts, "dead": dead_letters}
        self.stats: Counter[str] = Counter()
        self.due: dict[str, tuple[float, int]] = {}
        self._lock: asyncio.Lock | None = None
        self._partitions: set[int] = set()
        self._watching_since = 0.0
        self._status = StatusFile(settings.state_dir, "processor", home=settings.home)

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def get(self, key: bytes) -> bytes | None:
        """State lookup for the engine; reads the store directly (safe from the compute thread)."""
        table = self.runs if is_run_key(key) else self.state
        return table.data.get(key)

    # -- the agent -----------------------------------------------------------------------------
    async def handle(self, events: list[EventT]) -> None:
        """Process one batch completely, or end the process.

        Faust acks a ``take_events`` batch when the loop body leaves, even by an
        exception, and would then commit offsets for work never done.  So the batch
        is shielded from cancellation (a stopping worker finishes it), Kafka errors
        are retried, and anything else exits the process before a commit can happen:
        the next worker replays the batch.
        """
        records = [
            Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]
        await self._shielded(self._handle(records))

    async def _handle(self, records: list[Record]) -> None:
        started = time.perf_counter()
        async with self.lock:
            result, outgoing = await asyncio.to_thread(self._compute, records)
            await self._commit(result, outgoing)
        self.stats["batches"] += 1
        self.stats["batch_seconds_total"] += time.perf_counter() - started

    async def _shielded(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, _FINISH_SECONDS)
            raise
        except Exception:
            log.critical("processor batch failed; exiting without committing so it is replayed", exc_info=True)
            logging.shutdown()
            os._exit(70)

    def _compute(self, records: list[Record]) -> tuple[BatchResult, Outgoing]:
        result = self.pipeline.handle(records, get=self.get)
        return result, self._encode(result)

    # -- the clock -----------------------------------------------------------------------------
    def ready(self) -> bool:
        return not getattr(self.app, "rebalancing", True) and self.app.tables.recovery.completed.is_set()

    async def tick(self) -> None:
        if self.ready():
            await self._shielded(self._tick())
        self._write_status()

    async def _tick(self) -> None:
        async with self.lock:
            now = time.time()
            mine = self._assigned()
            if mine != self._partitions:  # a rebalance: backlogs of new partitions are still to come
                self._partitions, self._watching_since = mine, now
            self._discover(mine)
            due = [(run, p) for run, (at, p) in self.due.items() if at <= now and p in mine]
            if due:
                result = self.pipeline.tick(due, get=self.get, now=now, watching_since=self._watching_since)
                await self._commit(result, self._encode(result))

    def _assigned(self) -> set[int]:
        topic = self.settings.metrics_topic
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    def _discover(self, mine: set[int]) -> None:
        """Learn when recovered runs (state from a previous owner) are next due."""
        for k in list(self.runs.data.keys()):
            run_id = run_of(k)
            if run_id is None or run_id in self.due:
                continue
            run = RunState.decode(self.runs.data[k])
            if run.partition in mine:
                self.due[run_id] = (self.pipeline.engine.due(run), run.partition)

    # -- rows out, then state ------------------------------------------------------------------
    def _encode(self, result: BatchResult) -> Outgoing:
        limit = self.settings.kafka.max_message_bytes
        out: Outgoing = []
        for run in result.runs:
            for table, parts in run.output.rows.items():
                role = "alerts" if table == "alerts" else "derived"  # alerts get a topic of their own
                for msg in rows_messages(run.run_id, table, concat_columns(parts), max_bytes=limit):
                    out.append((role, run.run_id.encode(), msg))
        dead = dead_letter_columns(result.dead_letters)
        for msg in rows_messages(DEAD_LETTER_RUN, "dead_letters", dead, max_bytes=limit):
            out.append(("dead", DEAD_LETTER_RUN.encode(), msg))
        return out

    async def _send(self, outgoing: Outgoing) -> None:
        """Send and wait for Kafka's acknowledgement, retrying for as long as Kafka is away.

        A retry may send some rows twice; derived tables take repeats (same key, same version).
        """
        backoff = Backoff()
        while True:
            try:
                futures = [
                    await self.topics[role].send(key=key, value=value, force=True) for role, key, value in outgoing
                ]
                if futures:
                    await asyncio.gather(*futures)
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                self.stats["send_retries"] += 1
                delay = backoff.next_delay()
                log.warning("sending %d derived messages failed (%s); retrying in %.1fs", len(outgoing), exc, delay)
                await asyncio.sleep(delay)

    async def _commit(self, result: BatchResult, outgoing: Outgoing) -> None:
        await self._send(outgoing)
        for run in result.runs:
            for table, parts in run.output.rows.items():
                self.stats[f"rows:{table}"] += sum(len(next(iter(p.values()))) for p in parts)
            self._write_state(run.partition, run.output.writes)
            if run.output.due is None:
                self.due.pop(run.run_id, None)
            else:
                self.due[run.run_id] = (run.output.due, run.partition)
        self.stats.update(result.stats)
        self.stats["messages_sent"] += len(outgoing)

    def _write_state(self, partition: int, writes: dict[bytes, bytes | None]) -> None:
        deleted: list[RoutedTable] = []
        with routed_to(partition):
            for k, v in writes.items():
                table = self.runs if is_run_key(k) else self.state
                if v is not None:
                    table[k] = v
                elif k in table.data:
                    del table[k]
                    if not any(t is table for t in deleted):
                        deleted.append(table)
            for table in deleted:
                table[MARKER] = str(time.time()).encode()

    # -- what `fleetlog status` shows ----------------------------------------------------------
    def _write_status(self) -> None:
        status: dict[str, Any] = {
            "pid": os.getpid(),
            "group": self.app.conf.id,
            "partitions": sorted(self._assigned()),
            "runs_tracked": len(self.due),
            "updated": time.time(),
            "stats": dict(self.stats),
        }
        self._status.write(status)

    def remove_status(self) -> None:
        self._status.remove()
