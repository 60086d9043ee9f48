"""Turn Kafka records into column tables, one per ClickHouse table (pure, no I/O).

Metric points stay columnar the whole way: a batch's name indices become the
indices of an Arrow dictionary column (``LowCardinality`` on the ClickHouse
side), so no per-point Python object is ever created.  A record that cannot be
decoded or validated becomes a ``dead_letters`` row with the reason; it never
stops the batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from fleetlog.sinks.schema import DERIVED_TABLES

from fleetlog.events import Envelope, InvalidEvent, decode

__all__ = ["Record", "TableBuilder"]

_MAX_TEXT = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Kafka record the sink needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def _dict_column(indices: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32, copy=False)), pa.array(values, pa.string()))


@dataclass
class _Points:
    runs: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, int] = field(default_factory=dict)
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    count: int = 0

    def add(self, env: Envelope) -> None:
        batch = env.metrics
        n = len(batch)
        if not n:
            return
        lut = np.fromiter((self.metrics.setdefault(m, len(self.metrics)) for m in batch.names), np.int32)
        run = self.runs.setdefault(env.run_id, len(self.runs))
        self.parts.append(
            (
                np.full(n, run, np.int32),
                lut[batch.name_idx],
                np.full(n, env.source.rank, np.uint32),
                batch.step,
                batch.ts_ms,
                batch.value,
            )
        )
        self.count += n

    def table(self) -> pa.Table:
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        return pa.table(
            {
                "run_id": _dict_column(cols[0], list(self.runs)),
                "metric": _dict_column(cols[1], list(self.metrics)),
                "rank": cols[2],
                "step": cols[3],
                "ts": pa.array(cols[4].view("datetime64[ms]")),
                "value": cols[5],
            }
        )


class TableBuilder:
    """Accumulates records of one batch into per-table column tables."""

    def __init__(self) -> None:
        self._points = _Points()
        self._rows: dict[str, list[dict[str, Any]]] = {"runs": [], "run_params": [], "run_tags": [], "dead_letters": []}
        self._derived: dict[str, list[pa.Table]] = {}
        self.records = 0

    def add(self, records: Iterable[Record]) -> None:
        for rec in records:
            self.records += 1
            try:
                env = decode(rec.value)
                if rec.key is not None and rec.key != env.key:
                    raise InvalidEvent(f"message key {rec.key[:100]!r} does not match run id {env.run_id[:100]!r}")
                self._add(env)
            except InvalidEvent as exc:
                self.dead(rec, exc.reason)

    def _add(self, env: Envelope) -> None:
        if env.kind == "metrics":
            self._points.add(env)
        elif env.kind == "run":
            self._rows["runs"].append(_run_row(env))
        elif env.kind == "rows":
            table = env.body["table"]
            if table not in DERIVED_TABLES:
                raise InvalidEvent(f"rows for unknown table {table[:100]!r}")
            try:
                self._derived.setdefault(table, []).append(pa.table(env.body["columns"]))
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise InvalidEvent(f"rows for {table!r} are not columns: {exc}") from None
        else:
            table = "run_params" if env.kind == "params" else "run_tags"
            self._rows[table].extend(_key_value_rows(env))

    def dead(self, rec: Record, reason: str) -> None:
        self._rows["dead_letters"].append(
            {
                "received_at": time.time(),
                "stage": "sink",
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "key": (rec.key or b"")[:1024].decode("utf-8", "replace"),
                "reason": reason[:4096],
                "payload": rec.value[:_MAX_TEXT].decode("latin-1"),
            }
        )

    @property
    def points(self) -> int:
        return self._points.count

    def tables(self) -> dict[str, pa.Table]:
        """The non-empty tables, ready for ``insert_arrow``."""
        out: dict[str, pa.Table] = {}
        if self._points.count:
            out["metric_points"] = self._points.table()
        for name, rows in self._rows.items():
            if rows:
                out[name] = _rows_table(name, rows)
        for name, parts in self._derived.items():
            out[name] = pa.concat_tables(parts, promote_options="permissive")
        return out


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidEvent(f"run field {key!r} must be a string")
    return value[:_MAX_TEXT]


def _seconds(body: dict[str, Any], key: str) -> float:
    value = body.get(key, 0.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1e11:
        raise InvalidEvent(f"run field {key!r} must be a unix time in seconds")
    return float(value)


def _run_row(env: Envelope) -> dict[str, Any]:
    body = env.body
    error = body.get("error") or {}
    if not isinstance(error, dict):
        raise InvalidEvent("run field 'error' must be a map")
    end = _seconds(body, "end")
    return {
        "run_id": env.run_id,
        "project": env.project,
        "experiment": env.experiment,
        "name": _text(body, "name"),
        "parent_run_id": _text(body, "parent"),
        "status": _text(body, "status"),
        "start_time": _seconds(body, "start"),
        "end_time": end or None,
        "error_type": _text(error, "type"),
        "error_message": _text(error, "message"),
        "error_traceback": _text(error, "traceback"),
        "host": env.source.host,
        "pid": env.source.pid,
        "rank": env.source.rank,
        "world_size": env.source.world_size,
        "updated_at": env.sent_at,
    }


def _key_value_rows(env: Envelope) -> list[dict[str, Any]]:
    rows = []
    for key, value in env.body.items():
        if not isinstance(key, str) or not key:
            raise InvalidEvent(f"{env.kind} keys must be non-empty strings")
        kind = "null" if value is None else type(value).__name__
        if kind not in ("null", "str", "int", "float", "bool"):
            raise InvalidEvent(f"{env.kind} value for {key[:100]!r} has unsupported type {kind}")
        text = "" if value is None else (str(value).lower() if kind == "bool" else str(value))
        rows.append(
            {
                "run_id": env.run_id,
                "key": key[:_MAX_TEXT],
                "value": text[:_MAX_TEXT],
                "value_type": kind,
                "updated_at": env.sent_at,
            }
        )
    return rows


_TIMES = {"received_at", "start_time", "end_time", "updated_at"}


def _rows_table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for col in rows[0]:
        values = [r[col] for r in rows]
        if col in _TIMES:
            unit = "us" if col == "updated_at" else "ms"
            scale = 1e6 if unit == "us" else 1e3
            ticks = [None if v is None else int(v * scale) for v in values]
            columns[col] = pa.array(ticks, pa.int64()).cast(pa.timestamp(unit))
        else:
            columns[col] = pa.array(values)
    return pa.table(columns)
