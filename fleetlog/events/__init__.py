"""The wire format: versioned msgpack envelopes that every stage imports.

This package imports nothing of fleetlog's but the base (:mod:`fleetlog.errors`), so
producers, processors and sinks can all depend on it without depending on each other.
Evolution rule (msgspec's): new fields are added at the end with defaults, a field never
changes type, and a reader ignores keys it does not know.

- :mod:`~fleetlog.events.envelope`: the envelope around every message, ``encode``/``decode``.
- :mod:`~fleetlog.events.limits`: bounds on untrusted bytes (size, nesting, lengths).
- :mod:`~fleetlog.events.metrics`: the columnar metric batch -- four little-endian arrays,
  so decoding 30,000 points is four ``numpy.frombuffer`` calls.
- :mod:`~fleetlog.events.rows`: typed columns of derived ``rows`` (numeric buffers,
  :class:`DictColumn` strings); older writers' list columns still decode.
- :mod:`~fleetlog.events.records`: a Kafka :class:`Record`, :func:`decode_record` (the checks
  every stage applies) and :class:`DeadLetter` (what any stage keeps of a record it refuses).
- :mod:`~fleetlog.events.status`: :class:`RunStatus`, the run statuses every stage writes.
- :mod:`~fleetlog.events.values`: param, tag and property values as stored text and back.
"""

from __future__ import annotations

from fleetlog.errors import InvalidEvent
from fleetlog.events.envelope import EVENT_KINDS, SCHEMA_VERSION, Envelope, Source, decode, encode, encode_metrics
from fleetlog.events.limits import MAX_DEPTH, MAX_MESSAGE_BYTES
from fleetlog.events.metrics import MetricBatch
from fleetlog.events.records import (
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_RUN,
    SDK_ROW_TABLES,
    DeadLetter,
    Record,
    check_from_sdk,
    dead_letter_columns,
    decode_record,
)
from fleetlog.events.rows import ROW_DTYPES, DictColumn
from fleetlog.events.status import RunStatus

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "DEAD_LETTER_RUN",
    "EVENT_KINDS",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "ROW_DTYPES",
    "SCHEMA_VERSION",
    "SDK_ROW_TABLES",
    "DeadLetter",
    "DictColumn",
    "Envelope",
    "InvalidEvent",
    "MetricBatch",
    "Record",
    "RunStatus",
    "Source",
    "check_from_sdk",
    "dead_letter_columns",
    "decode",
    "decode_record",
    "encode",
    "encode_metrics",
]
