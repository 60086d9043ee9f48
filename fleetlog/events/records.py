"""Kafka records in, and the records no stage can use out: one check, one dead-letter shape.

The processors and the sink read the same SDK topics and must refuse exactly the same
messages, so both call :func:`decode_record`; what either refuses becomes one
:class:`DeadLetter`, built here once, whichever stage wrote it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleetlog.errors import InvalidEvent
from fleetlog.events.envelope import Envelope, decode
from fleetlog.events.rows import DictColumn

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "DEAD_LETTER_RUN",
    "SDK_ROW_TABLES",
    "DeadLetter",
    "Record",
    "check_from_sdk",
    "dead_letter_columns",
    "decode_record",
]

# The one table an SDK client writes ``rows`` for (the rules of ``Run.set_alert``).  Rows for every
# other table are derived: only the processors write them, on topics of their own, so the same rows
# on an SDK topic are forged (a client inventing rollups, summaries or alerts).
SDK_ROW_TABLES: frozenset[str] = frozenset({"alert_rules"})

# The run id (and Kafka key) that dead-letter rows travel under: they belong to no run.
DEAD_LETTER_RUN = "-dead-letters-"
# The ``dead_letters`` table's columns, in its order.
DEAD_LETTER_COLUMNS = ("received_at", "stage", "topic", "partition", "offset", "key", "reason", "payload")

_MAX_KEY = 1024
_MAX_REASON = 4096
_MAX_PAYLOAD = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Kafka record that the processors and the sinks read an event from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def check_from_sdk(env: Envelope) -> None:
    """Refuse an event read from an SDK topic (metrics, events) that only a processor may write.

    Raises ``InvalidEvent`` for ``rows`` of any table but :data:`SDK_ROW_TABLES`.
    """
    if env.kind == "rows" and env.body["table"] not in SDK_ROW_TABLES:
        raise InvalidEvent(
            f"rows for {env.body['table'][:100]!r} came on an SDK topic; derived rows may only come from the"
            " processors' own topics"
        )


def decode_record(rec: Record, *, from_sdk: bool) -> Envelope:
    """Decode a record's value and check it belongs where it was read; anything wrong is ``InvalidEvent``.

    The key, when there is one, must be the run id (one run's events stay on one partition,
    in order); ``from_sdk``: the record came on a topic SDK clients write, where derived rows
    are forged (:func:`check_from_sdk`).
    """
    env = decode(rec.value)
    if rec.key is not None and rec.key != env.key:
        raise InvalidEvent(f"message key {rec.key[:100]!r} does not match run id {env.run_id[:100]!r}")
    if from_sdk:
        check_from_sdk(env)
    return env


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One row of ``dead_letters``: a record a stage could not use, with the reason, kept as it came.

    ``received_at`` is unix seconds; ``payload`` the record's raw bytes (the first MiB), so
    the message can be decoded again once the reason is fixed.
    """

    received_at: float
    stage: str
    topic: str
    partition: int
    offset: int
    key: str
    reason: str
    payload: bytes

    @classmethod
    def of(cls, rec: Record, reason: str, *, stage: str, now: float | None = None) -> DeadLetter:
        """The dead letter for ``rec``, its key and reason cut to what the table keeps."""
        return cls(
            received_at=time.time() if now is None else now,
            stage=stage,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            key=(rec.key or b"")[:_MAX_KEY].decode("utf-8", "replace"),
            reason=reason[:_MAX_REASON],
            payload=bytes(rec.value[:_MAX_PAYLOAD]),
        )


def dead_letter_columns(letters: Sequence[DeadLetter]) -> dict[str, np.ndarray | DictColumn | list]:
    """Dead letters as the columns of a ``rows`` body for ``dead_letters`` (empty: no columns).

    The same typed columns whichever stage builds them, so the sink's own dead letters and the
    processors' join in one insert without any conversion.
    """
    if not letters:
        return {}
    return {
        "received_at": np.array([d.received_at for d in letters], np.float64),
        "stage": DictColumn.of(d.stage for d in letters),
        "topic": DictColumn.of(d.topic for d in letters),
        "partition": np.array([d.partition for d in letters], np.uint32),
        "offset": np.array([d.offset for d in letters], np.uint64),
        "key": DictColumn.of(d.key for d in letters),
        "reason": DictColumn.of(d.reason for d in letters),
        "payload": [d.payload for d in letters],
    }
