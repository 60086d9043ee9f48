"""Kafka records of one batch -> decoded, validated, grouped by run -> the engine.

No Faust here: records come in as plain values and results go out as plain
values, so unit tests drive the whole path with lists and dicts.  No record can
stop the partition: whatever a record raises, the batch carries on without it.

Exactly one dead letter per bad message.  The sink reads the same topics and
dead-letters what it cannot store -- anything decoding raises, a key that is not
the run's, derived rows forged on an SDK topic -- so those are only counted here
(``refused_by_sink``).  What only this stage refuses (a rank outside its world, a
malformed alert rule, a run whose processing raises) becomes a
:class:`~fleetlog.events.DeadLetter` of this stage (reason, original bytes,
topic/partition/offset), the same type the sink keeps its own in.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetlog.processors.core.engine import Getter, Output, RunEngine
from fleetlog.processors.core.lifecycle import is_alert_rules, parse_alert_rules

from fleetlog.events import DeadLetter, Envelope, InvalidEvent, Record, decode_record
from fleetlog.events.models import is_model_stream

__all__ = ["BatchResult", "Pipeline", "Record", "RunResult"]

log = logging.getLogger("fleetlog.processor")


@dataclass
class RunResult:
    run_id: str
    partition: int
    output: Output


@dataclass
class BatchResult:
    runs: list[RunResult] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)


def _validate(env: Envelope) -> None:
    src = env.source
    if src.world_size < 1 or not 0 <= src.rank < src.world_size:
        raise InvalidEvent(f"rank {src.rank} does not fit world size {src.world_size}")
    if is_alert_rules(env):
        parse_alert_rules(env)


class Pipeline:
    """Route a batch's records to ``RunEngine`` per run."""

    def __init__(self, engine: RunEngine, *, metrics_topic: str, events_topic: str) -> None:
        self.engine = engine
        self.metrics_topic = metrics_topic
        self.events_topic = events_topic

    def handle(self, records: Sequence[Record], *, get: Getter, now: float | None = None) -> BatchResult:
        now = time.time() if now is None else now
        result = BatchResult()
        by_run: dict[str, tuple[int, list, list, list[Record]]] = {}
        for rec in records:
            try:
                env = decode_record(rec, from_sdk=True)  # every topic this stage reads is an SDK topic
            except MemoryError:
                raise  # the process is short of memory, not the record at fault: replay, do not discard
            except Exception:
                # The sink reads every record too and keeps this one in dead_letters with the
                # reason; a second row from this stage would count one bad message twice.
                result.stats["refused_by_sink"] += 1
                continue
            try:
                _validate(env)
            except MemoryError:
                raise
            except Exception as exc:  # what only the processors refuse: the sink stored it
                reason = exc.reason if isinstance(exc, InvalidEvent) else f"{type(exc).__name__}: {str(exc)[:500]}"
                result.dead_letters.append(DeadLetter.of(rec, reason, stage="processor", now=now))
                result.stats["dead_letters"] += 1
                continue
            if is_model_stream(env.run_id):  # a model registration belongs to no run: the sink alone stores it
                result.stats["model_events"] += 1
                continue
            entry = by_run.setdefault(env.run_id, (rec.partition, [], [], []))
            (entry[1] if env.kind == "metrics" else entry[2]).append((rec.offset, env))
            entry[3].append(rec)
            result.stats["records"] += 1
        for run_id, (partition, metrics, events, recs) in by_run.items():
            try:
                output = self.engine.process(run_id, partition, metrics, events, now=now, get=get)
            except Exception as exc:  # a bug or data we did not foresee must not stall the partition
                log.exception("processing run %r failed; its %d records go to dead letters", run_id, len(recs))
                reason = f"processing failed: {type(exc).__name__}: {exc}"
                result.dead_letters += [DeadLetter.of(rec, reason, stage="processor", now=now) for rec in recs]
                result.stats["dead_letters"] += len(recs)
                continue
            result.stats.update(output.stats)
            result.runs.append(RunResult(run_id, partition, output))
        return result

    def tick(
        self, runs: Sequence[tuple[str, int]], *, get: Getter, now: float | None = None, watching_since: float = 0.0
    ) -> BatchResult:
        """Let the clock act on ``(run id, partition)`` pairs (lost runs, late flushes, forgetting)."""
        now = time.time() if now is None else now
        result = BatchResult()
        for run_id, partition in runs:
            try:
                output = self.engine.tick(run_id, now=now, get=get, watching_since=watching_since)
            except Exception:
                log.exception("clock work for run %r failed; retrying in a minute", run_id)
                output = Output(due=now + 60.0)
            result.stats.update(output.stats)
            result.runs.append(RunResult(run_id, partition, output))
        return result
