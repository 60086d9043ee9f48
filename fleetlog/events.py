"""The wire format: versioned msgpack envelopes that every stage imports.

This module imports nothing of fleetlog's, so producers, processors and sinks can
all depend on it without depending on each other.  Evolution rule (msgspec's):
new fields are added at the end with defaults, a field never changes type, and a
reader ignores keys it does not know.

A metrics batch is columnar: a table of metric names plus four parallel
little-endian arrays (name index, step, time in ms, value) carried as raw bytes,
so decoding a batch of 30,000 points is four ``numpy.frombuffer`` calls instead of
30,000 Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

__all__ = [
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "Envelope",
    "InvalidEvent",
    "MetricBatch",
    "Source",
    "decode",
    "encode",
    "encode_metrics",
]

SCHEMA_VERSION = 1

# kind -> what the body holds.  "metrics" is the only columnar one.
EVENT_KINDS: dict[str, str] = {
    "metrics": "columnar batch of scalar points",
    "run": "a full snapshot of a run's record: name, status, times, error",
    "params": "a mapping of parameter name to value",
    "tags": "a mapping of tag name to value",
    "untag": "{'keys': [tag names]} removed from a run",
    "properties": "a mapping of property name to value; properties never change once set",
    "heartbeat": "{'time': unix seconds}: the run's process is alive",
    "record": "one logged list, table row, table or structured payload: {'name', 'type', 'description', 'data'}",
    "artifact": "a file or image's metadata: {'name', 'kind', 'size', 'sha256', 'uri', 'content_type', 'inline'}",
    "logs": "captured lines as columns: {'ts': [ms], 'stream', 'level', 'logger', 'message': [str]}",
    "rows": "derived rows for one table, as columns: {'table': name, 'columns': {column: [values]}}",
}

_IDX = np.dtype("<u4")
_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")
_POINT_BYTES = _IDX.itemsize + 2 * _I64.itemsize + _F64.itemsize
_MAX_NAMES = 1 << 20


class InvalidEvent(ValueError):
    """The one error decoding untrusted bytes can raise; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Source:
    """Which process sent an event: enough to tell ranks of one job apart."""

    host: str = ""
    pid: int = 0
    rank: int = 0
    world_size: int = 1


@dataclass(frozen=True, slots=True)
class MetricBatch:
    """Decoded points: ``names[name_idx[i]]`` is the metric of point ``i``."""

    names: tuple[str, ...]
    name_idx: np.ndarray
    step: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    def metric_names(self) -> np.ndarray:
        """One name per point, as an object array (for inserting a String column)."""
        return np.asarray(self.names, dtype=object)[self.name_idx]


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every Kafka message carries around its body.

    ``session`` + ``seq`` identify a message for de-duplication: a producer session
    numbers its messages 0, 1, 2... and never reuses a number.
    """

    kind: str
    run_id: str
    project: str = ""
    experiment: str = ""
    source: Source = field(default_factory=Source)
    session: str = ""
    seq: int = 0
    sent_at: float = 0.0
    body: Any = None
    version: int = SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        """Kafka message key: one run's events stay on one partition, in order."""
        return self.run_id.encode()

    @property
    def metrics(self) -> MetricBatch:
        if not isinstance(self.body, MetricBatch):
            raise TypeError(f"a {self.kind!r} event carries no metrics")
        return self.body


def _header(env: Envelope) -> dict[str, Any]:
    s = env.source
    return {
        "v": env.version,
        "kind": env.kind,
        "project": env.project,
        "experiment": env.experiment,
        "run": env.run_id,
        "src": [s.host, s.pid, s.rank, s.world_size],
        "session": env.session,
        "seq": env.seq,
        "sent": env.sent_at,
    }


def encode(env: Envelope) -> bytes:
    """Encode a non-metrics event (run snapshot, params, tags...)."""
    if env.kind == "metrics":
        raise ValueError("use encode_metrics for metric batches")
    head = _header(env)
    head["body"] = env.body
    return msgpack.packb(head, use_bin_type=True)


def encode_metrics(
    env: Envelope,
    names: list[str] | tuple[str, ...],
    name_idx: np.ndarray,
    step: np.ndarray,
    ts_ms: np.ndarray,
    value: np.ndarray,
    *,
    max_bytes: int = 900_000,
) -> Iterator[tuple[int, bytes]]:
    """Encode points into as many messages as needed to stay under ``max_bytes``.

    Yields ``(points_in_message, message)``; each message gets the sequence number
    ``env.seq + i``, so the caller advances its counter by the number of messages.
    Only the names a chunk uses travel with it: a chunk is decodable on its own.
    """
    n = len(value)
    names_bytes = sum(len(x.encode()) + 5 for x in names) + 512
    per_msg = max(1, (max_bytes - names_bytes) // _POINT_BYTES)
    head = _header(env)
    for i, start in enumerate(range(0, max(n, 1), per_msg)):
        stop = min(n, start + per_msg)
        idx = np.asarray(name_idx[start:stop])
        used, local = np.unique(idx, return_inverse=True) if len(idx) else (idx, idx)
        head["seq"] = env.seq + i
        head["body"] = {
            "names": [names[j] for j in used.tolist()],
            "idx": local.astype(_IDX, copy=False).tobytes(),
            "step": np.asarray(step[start:stop], dtype=_I64).tobytes(),
            "ts": np.asarray(ts_ms[start:stop], dtype=_I64).tobytes(),
            "value": np.asarray(value[start:stop], dtype=_F64).tobytes(),
        }
        yield stop - start, msgpack.packb(head, use_bin_type=True)


def decode(data: bytes) -> Envelope:
    """Decode one Kafka message value; anything wrong raises ``InvalidEvent`` only."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidEvent(f"message value must be bytes, got {type(data).__name__}")
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises a zoo of types on garbage
        raise InvalidEvent(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(f"envelope must be a map, got {type(raw).__name__}")
    return _envelope(raw)


def _envelope(raw: Mapping[str, Any]) -> Envelope:
    version = _field(raw, "v", int)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema version {version!r} (this reader knows {SCHEMA_VERSION})")
    kind = _field(raw, "kind", str)
    if kind not in EVENT_KINDS:
        raise InvalidEvent(f"unknown event kind {kind!r}")
    run_id = _field(raw, "run", str)
    if not run_id:
        raise InvalidEvent("empty run id")
    src = _field(raw, "src", list)
    if len(src) != 4 or not all(isinstance(x, t) for x, t in zip(src, (str, int, int, int), strict=True)):
        raise InvalidEvent("field 'src' must be [host, pid, rank, world_size]")
    if not all(0 <= x < 2**32 for x in src[1:]):
        raise InvalidEvent("pid, rank and world_size must be in [0, 2**32)")
    seq = _field(raw, "seq", int)
    sent = _field(raw, "sent", (int, float))
    if not 0 <= seq < 2**63 or not 0 <= sent < 1e11:
        raise InvalidEvent("field 'seq' must be in [0, 2**63) and 'sent' a unix time in seconds")
    body = raw.get("body")
    if kind == "metrics":
        body = _metric_batch(body)
    elif not isinstance(body, dict):
        raise InvalidEvent(f"a {kind!r} event needs a map body")
    elif kind == "rows":
        _check_rows(body)
    return Envelope(
        kind=kind,
        run_id=run_id,
        project=_field(raw, "project", str),
        experiment=_field(raw, "experiment", str),
        source=Source(host=src[0], pid=src[1], rank=src[2], world_size=src[3]),
        session=_field(raw, "session", str),
        seq=seq,
        sent_at=float(sent),
        body=body,
        version=version,
    )


def _field(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in raw:
        raise InvalidEvent(f"missing field {name!r}")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidEvent(f"field {name!r} has type {type(value).__name__}")
    return value


def _metric_batch(body: Any) -> MetricBatch:
    if not isinstance(body, dict):
        raise InvalidEvent("a metrics event needs a map body")
    names = _field(body, "names", list)
    if len(names) > _MAX_NAMES or not all(isinstance(x, str) for x in names):
        raise InvalidEvent("'names' must be a list of strings")
    cols = {}
    for key, dtype in (("idx", _IDX), ("step", _I64), ("ts", _I64), ("value", _F64)):
        buf = _field(body, key, bytes)
        if len(buf) % dtype.itemsize:
            raise InvalidEvent(f"column {key!r} is {len(buf)} bytes, not a multiple of {dtype.itemsize}")
        cols[key] = np.frombuffer(buf, dtype=dtype)
    n = len(cols["value"])
    if any(len(c) != n for c in cols.values()):
        raise InvalidEvent("metric columns have different lengths")
    if n and int(cols["idx"].max()) >= len(names):
        raise InvalidEvent("a name index points past the names table")
    return MetricBatch(
        names=tuple(names),
        name_idx=cols["idx"],
        step=cols["step"],
        ts_ms=cols["ts"],
        value=cols["value"],
    )


def _check_rows(body: dict[str, Any]) -> None:
    table = _field(body, "table", str)
    columns = _field(body, "columns", dict)
    if not table or not columns:
        raise InvalidEvent("a rows event needs a table name and at least one column")
    lengths = set()
    for name, values in columns.items():
        if not isinstance(name, str) or not isinstance(values, list):
            raise InvalidEvent(f"rows column {str(name)[:100]!r} must be a list")
        lengths.add(len(values))
    if len(lengths) != 1:
        raise InvalidEvent(f"rows columns for {table[:100]!r} have different lengths")
