"""The envelope every Kafka message carries around its body, and the one encoder and decoder of it.

A message is one msgpack map: a header (schema version, kind, run id, who sent it,
its sequence number) plus a ``body`` whose shape the ``kind`` names (:data:`EVENT_KINDS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from fleetlog.errors import InvalidEvent
from fleetlog.events import limits
from fleetlog.events.limits import MAX_MAP_LEN, MAX_MESSAGE_BYTES, MAX_ROWS, require
from fleetlog.events.metrics import MetricBatch, metric_bodies, read_metric_batch
from fleetlog.events.rows import read_rows_body, wire_rows_body

__all__ = ["EVENT_KINDS", "SCHEMA_VERSION", "Envelope", "Source", "decode", "encode", "encode_metrics"]

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
    "model": (
        "a model registration, keyed by model name (fleetlog.events.models): {'name', 'registration_id', 'run_id',"
        " 'url', 'path', 'description', 'tags', 'properties', 'size', 'time'}"
    ),
    "rows": (
        "derived rows for one table, as columns: {'table': name, 'columns': {column: [values]"
        " | {'dtype', 'data': bytes} | {'dictionary': [str], 'indices': <i4 bytes}}}"
    ),
}


@dataclass(frozen=True, slots=True)
class Source:
    """Which process sent an event: enough to tell ranks of one job apart."""

    host: str = ""
    pid: int = 0
    rank: int = 0
    world_size: int = 1


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
    head["body"] = wire_rows_body(env.body) if env.kind == "rows" else env.body
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
    head = _header(env)
    for i, (points, body) in enumerate(metric_bodies(names, name_idx, step, ts_ms, value, max_bytes=max_bytes)):
        head["seq"] = env.seq + i
        head["body"] = body
        yield points, msgpack.packb(head, use_bin_type=True)


def decode(data: bytes) -> Envelope:
    """Decode one Kafka message value; anything wrong raises ``InvalidEvent`` only.

    Sizes are bounded while msgpack reads (a declared length never allocates more than
    the message holds), and a body's nesting before any code that recurses sees it: only
    bodies travel on (a metric batch is type-checked and copied out, unknown keys dropped),
    so only they are walked, and the hot path -- metric batches -- pays nothing.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidEvent(f"message value must be bytes, got {type(data).__name__}")
    size = len(data)
    if not size:
        raise InvalidEvent("not a msgpack message: it is empty (a null or empty Kafka record value)")
    if size > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message is {size} bytes (at most {MAX_MESSAGE_BYTES})")
    try:
        raw = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=min(size, MAX_ROWS),
            max_map_len=min(size // 2, MAX_MAP_LEN),
            max_ext_len=0,  # fleetlog never writes extension types (timestamps included)
        )
    except Exception as exc:  # msgpack raises a zoo of types on garbage
        raise InvalidEvent(f"not a msgpack message: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(f"envelope must be a map, got {type(raw).__name__}")
    try:
        return _envelope(raw)
    except InvalidEvent:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # a check we did not foresee
        raise InvalidEvent(f"malformed event: {type(exc).__name__}: {str(exc)[:200]}") from None


def _envelope(raw: Mapping[str, Any]) -> Envelope:
    version = require(raw, "v", int)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema version {version!r} (this reader knows {SCHEMA_VERSION})")
    kind = require(raw, "kind", str)
    if kind not in EVENT_KINDS:
        raise InvalidEvent(f"unknown event kind {kind!r}")
    run_id = require(raw, "run", str)
    if not run_id:
        raise InvalidEvent("empty run id")
    src = require(raw, "src", list)
    if len(src) != 4 or not all(isinstance(x, t) for x, t in zip(src, (str, int, int, int), strict=True)):
        raise InvalidEvent("field 'src' must be [host, pid, rank, world_size]")
    if not all(0 <= x < 2**32 for x in src[1:]):
        raise InvalidEvent("pid, rank and world_size must be in [0, 2**32)")
    seq = require(raw, "seq", int)
    sent = require(raw, "sent", (int, float))
    if not 0 <= seq < 2**63 or not 0 <= sent < 1e11:
        raise InvalidEvent("field 'seq' must be in [0, 2**63) and 'sent' a unix time in seconds")
    return Envelope(
        kind=kind,
        run_id=run_id,
        project=require(raw, "project", str),
        experiment=require(raw, "experiment", str),
        source=Source(host=src[0], pid=src[1], rank=src[2], world_size=src[3]),
        session=require(raw, "session", str),
        seq=seq,
        sent_at=float(sent),
        body=_body(kind, raw.get("body")),
        version=version,
    )


def _body(kind: str, body: Any) -> Any:
    """The checked body: a metric batch copied out, any other map walked for depth once."""
    if kind == "metrics":  # every part is type-checked and copied out; unknown keys are dropped
        return read_metric_batch(body)
    if not isinstance(body, dict):
        raise InvalidEvent(f"a {kind!r} event needs a map body")
    # The body is level 2 of the message.  Read through the module so a test can lift the limit.
    if limits.nested_deeper(body, limits.MAX_DEPTH - 1):
        raise InvalidEvent(f"{kind!r} event nests lists and maps more than {limits.MAX_DEPTH} levels deep")
    return read_rows_body(body) if kind == "rows" else body
