"""The wire format: versioned msgpack envelopes that every stage imports.

This module imports nothing of fleetlog's, so producers, processors and sinks can
all depend on it without depending on each other.  Evolution rule (msgspec's):
new fields are added at the end with defaults, a field never changes type, and a
reader ignores keys it does not know.

A metrics batch is columnar: a table of metric names plus four parallel
little-endian arrays (name index, step, time in ms, value) carried as raw bytes,
so decoding a batch of 30,000 points is four ``numpy.frombuffer`` calls instead of
30,000 Python objects.

Derived ``rows`` are columnar for the same reason: a processor emits about one
derived row per two raw points, so a numeric column travels as one raw buffer
with its dtype and a string column as a dictionary plus an index buffer
(:class:`DictColumn`).  Columns that hold nulls or other objects, and every
column of older writers, travel as plain lists; a reader accepts both forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import msgpack
import numpy as np

__all__ = [
    "EVENT_KINDS",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "ROW_DTYPES",
    "SCHEMA_VERSION",
    "SDK_ROW_TABLES",
    "DictColumn",
    "Envelope",
    "InvalidEvent",
    "MetricBatch",
    "Record",
    "Source",
    "check_from_sdk",
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
    "rows": (
        "derived rows for one table, as columns: {'table': name, 'columns': {column: [values]"
        " | {'dtype', 'data': bytes} | {'dictionary': [str], 'indices': <i4 bytes}}}"
    ),
}

_IDX = np.dtype("<u4")
_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")
_POINT_BYTES = _IDX.itemsize + 2 * _I64.itemsize + _F64.itemsize
_MAX_NAMES = 1 << 20
_I32 = np.dtype("<i4")

# The dtypes a typed ``rows`` column may declare: fixed-width little-endian numbers and bools, nothing
# a reader would have to interpret (no objects, no datetimes: times travel as float unix seconds).
ROW_DTYPES: frozenset[str] = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"})
_MAX_ROWS = 1 << 24
_MAX_COLUMNS = 1024

# Limits on untrusted bytes, checked before anything else looks at a message.  Every stage recurses
# somewhere (json.dumps of a record's data, Arrow on nested lists, repr in an error message), and
# Python's recursion limit is about 1,000 frames: a message nested deeper than that would kill the
# stage that read it, and kill it again on every restart at the same offset.  Real events nest a few
# levels (envelope -> body -> a record's data); 64 leaves room for any structured payload.
MAX_DEPTH = 64
# Kafka topics cap messages at a few MiB; this bound holds even where a topic's cap was raised.
MAX_MESSAGE_BYTES = 1 << 26
_MAX_MAP_LEN = 1 << 20
_CONTAINERS = frozenset({list, dict})

# The one table an SDK client writes ``rows`` for (the rules of ``Run.set_alert``).  Rows for every
# other table are derived: only the processors write them, on topics of their own, so the same rows
# on an SDK topic are forged (a client inventing rollups, summaries or alerts).
SDK_ROW_TABLES: frozenset[str] = frozenset({"alert_rules"})


class InvalidEvent(ValueError):
    """The one error decoding untrusted bytes can raise; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Kafka record that the processors and the sinks read an event from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


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


@dataclass(frozen=True, slots=True, eq=False)
class DictColumn:
    """A string column of ``rows`` as distinct ``values`` plus one int32 index per row.

    Derived rows repeat a few strings (run id, metric name) thousands of times, so
    this is what travels instead of one string per row -- and it is exactly an
    Arrow dictionary array, which ClickHouse takes for ``String`` and
    ``LowCardinality(String)`` columns alike.  Iterating yields the strings.
    """

    values: tuple[str, ...]
    indices: np.ndarray

    @classmethod
    def of(cls, strings: Iterable[str]) -> DictColumn:
        """Dictionary-encode strings in first-seen order (one Python step per string: for short columns)."""
        table: dict[str, int] = {}
        indices = np.fromiter((table.setdefault(s, len(table)) for s in strings), _I32)
        return cls(tuple(table), indices)

    @classmethod
    def repeat(cls, value: str, n: int) -> DictColumn:
        """One string ``n`` times (a run id beside every row of its run)."""
        return cls((value,), np.zeros(n, _I32))

    @classmethod
    def concat(cls, parts: Sequence[DictColumn]) -> DictColumn:
        """Parts with their own dictionaries -> one column over the union of them."""
        table: dict[str, int] = {}
        chunks = []
        for part in parts:
            lut = np.fromiter((table.setdefault(v, len(table)) for v in part.values), _I32, len(part.values))
            chunks.append(lut[part.indices])
        return cls(tuple(table), np.concatenate(chunks) if chunks else np.empty(0, _I32))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def __getitem__(self, rows: slice) -> DictColumn:
        return DictColumn(self.values, self.indices[rows])

    def tolist(self) -> list[str]:
        values = self.values
        return [values[i] for i in self.indices.tolist()]

    def compact(self) -> DictColumn:
        """Only the values some row uses: a slice of a big column travels with its own strings only."""
        if not len(self.indices):
            return DictColumn((), self.indices.astype(_I32, copy=False))
        used = np.bincount(self.indices, minlength=len(self.values)) > 0
        if used.all():
            return self
        remap = (np.cumsum(used) - 1).astype(_I32)
        kept = tuple(v for v, keep in zip(self.values, used.tolist(), strict=True) if keep)
        return DictColumn(kept, remap[self.indices])


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
    head["body"] = _wire_rows(env.body) if env.kind == "rows" else env.body
    return msgpack.packb(head, use_bin_type=True)


def _wire_rows(body: Any) -> Any:
    """A ``rows`` body with numpy and dictionary columns in their binary wire form (lists stay lists)."""
    columns = body.get("columns") if isinstance(body, Mapping) else None
    if not isinstance(columns, Mapping):
        return body
    return {**body, "columns": {name: _wire_column(values) for name, values in columns.items()}}


def _wire_column(values: Any) -> Any:
    if isinstance(values, DictColumn):
        c = values.compact()
        return {"dictionary": list(c.values), "indices": c.indices.astype(_I32, copy=False).tobytes()}
    if isinstance(values, np.ndarray):
        dtype = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
        if dtype.str in ROW_DTYPES:
            return {"dtype": dtype.str, "data": np.ascontiguousarray(values, dtype).tobytes()}
        return values.tolist()  # objects, datetimes...: only msgpack knows how to carry them
    return values


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
        used, local = idx, idx
        if len(idx):  # np.unique(idx, return_inverse=True) without its sort: a count per name is O(n)
            used = np.flatnonzero(np.bincount(idx, minlength=len(names)))
            remap = np.zeros(max(len(names), int(used[-1]) + 1), dtype=_IDX)
            remap[used] = np.arange(len(used), dtype=_IDX)
            local = remap[idx]
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
            max_array_len=min(size, _MAX_ROWS),
            max_map_len=min(size // 2, _MAX_MAP_LEN),
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


def _nested_deeper(root: list | dict, limit: int) -> bool:
    """Whether ``root`` (level 1) nests lists and maps below level ``limit``; iterative, so any depth is safe.

    One pass per level over all of that level's children: gathering them (``chain``) and
    spotting containers among them (``map(type, ...)``) run in C, so a level of scalars --
    a list column, a table's cells -- costs no Python step per element.  msgpack yields
    exactly ``list`` and ``dict``, and map keys are never containers (``strict_map_key``).
    """
    lists, maps = ([root], []) if type(root) is list else ([], [root])
    for _ in range(limit):
        children = [*chain.from_iterable(lists), *chain.from_iterable(map(dict.values, maps))]
        if _CONTAINERS.isdisjoint(map(type, children)):
            return False
        lists = [x for x in children if type(x) is list]
        maps = [x for x in children if type(x) is dict]
    return True


def check_from_sdk(env: Envelope) -> None:
    """Refuse an event read from an SDK topic (metrics, events) that only a processor may write.

    Raises ``InvalidEvent`` for ``rows`` of any table but :data:`SDK_ROW_TABLES`.  The sink
    and the processors both call this for records of those topics, so both refuse the same
    messages and only the sink dead-letters them.
    """
    if env.kind == "rows" and env.body["table"] not in SDK_ROW_TABLES:
        raise InvalidEvent(
            f"rows for {env.body['table'][:100]!r} came on an SDK topic; derived rows may only come from the"
            " processors' own topics"
        )


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
    if kind == "metrics":  # every part is type-checked and copied out; unknown keys are dropped
        body = _metric_batch(body)
    elif not isinstance(body, dict):
        raise InvalidEvent(f"a {kind!r} event needs a map body")
    elif _nested_deeper(body, MAX_DEPTH - 1):  # the body is level 2 of the message
        raise InvalidEvent(f"{kind!r} event nests lists and maps more than {MAX_DEPTH} levels deep")
    elif kind == "rows":
        body = _rows_body(body)
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


def _rows_body(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``rows`` body and turn its binary columns into read-only numpy views."""
    table = _field(body, "table", str)
    columns = _field(body, "columns", dict)
    if not table or not columns:
        raise InvalidEvent("a rows event needs a table name and at least one column")
    if len(columns) > _MAX_COLUMNS:
        raise InvalidEvent(f"rows for {table[:100]!r} have {len(columns)} columns (at most {_MAX_COLUMNS})")
    decoded = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise InvalidEvent(f"rows column name {str(name)[:100]!r} is not a string")
        decoded[name] = _rows_column(name, values)
    if len({len(values) for values in decoded.values()}) != 1:
        raise InvalidEvent(f"rows columns for {table[:100]!r} have different lengths")
    return {**body, "columns": decoded}


def _rows_column(name: str, values: Any) -> list | np.ndarray | DictColumn:
    what = f"rows column {name[:100]!r}"
    if isinstance(values, list):
        if len(values) > _MAX_ROWS:
            raise InvalidEvent(f"{what} has {len(values)} rows (at most {_MAX_ROWS})")
        return values
    if not isinstance(values, dict):
        raise InvalidEvent(f"{what} must be a list, a typed buffer or a dictionary column")
    if "dtype" in values:
        dtype = values["dtype"]
        if not isinstance(dtype, str) or dtype not in ROW_DTYPES:
            raise InvalidEvent(f"{what} has unknown dtype {str(dtype)[:20]!r} (known: {', '.join(sorted(ROW_DTYPES))})")
        array = np.frombuffer(_buffer(what, values, "data", np.dtype(dtype)), dtype)
        if dtype == "|b1" and len(array) and int(array.view(np.uint8).max()) > 1:
            raise InvalidEvent(f"{what} is bool but holds bytes other than 0 and 1")
        return array
    if "dictionary" in values:
        strings = values["dictionary"]
        if not isinstance(strings, list) or len(strings) > _MAX_NAMES or not all(isinstance(x, str) for x in strings):
            raise InvalidEvent(f"{what}: 'dictionary' must be a list of at most {_MAX_NAMES} strings")
        indices = np.frombuffer(_buffer(what, values, "indices", _I32), _I32)
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(strings)):
            raise InvalidEvent(f"{what}: an index points outside its dictionary of {len(strings)} strings")
        return DictColumn(tuple(strings), indices)
    raise InvalidEvent(f"{what} is a map with neither 'dtype' nor 'dictionary'")


def _buffer(what: str, column: dict[str, Any], key: str, dtype: np.dtype) -> bytes:
    data = column.get(key)
    if not isinstance(data, bytes):
        raise InvalidEvent(f"{what}: {key!r} must be bytes, not {type(data).__name__}")
    if len(data) % dtype.itemsize:
        raise InvalidEvent(f"{what}: {key!r} is {len(data)} bytes, not a multiple of {dtype.itemsize}")
    if len(data) // dtype.itemsize > _MAX_ROWS:
        raise InvalidEvent(f"{what} has {len(data) // dtype.itemsize} rows (at most {_MAX_ROWS})")
    return data
