"""Turn Kafka records into column tables, one per ClickHouse table (pure, no I/O).

Metric points stay columnar the whole way: a batch's name indices become the
indices of an Arrow dictionary column (``LowCardinality`` on the ClickHouse
side), so no per-point Python object is ever created.  A record that cannot be
decoded or validated becomes a :class:`~fleetlog.events.DeadLetter` with the
reason, the same type the processors send theirs in; it never stops the batch.

Derived rows arrive columnar too: numeric columns are read-only numpy views of
the message and string columns dictionaries, so they become Arrow arrays
without a Python object per row.  Older writers' list columns still decode; their
strings are dictionary-encoded so both forms of one table concatenate.

Repeats are dropped by sequence number: every producer stream numbers its
messages per topic, and ``high_water`` says the highest number that already
landed, so a replayed spool or a retried send cannot duplicate anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fleetlog.sinks._event_rows import ROW_BUILDERS, TIME_COLUMNS

from fleetlog.events import (
    DEAD_LETTER_COLUMNS,
    DeadLetter,
    DictColumn,
    Envelope,
    InvalidEvent,
    Record,
    dead_letter_columns,
    decode_record,
)
from fleetlog.store.schema import DERIVED_TABLES

__all__ = ["Record", "StreamKey", "TableBuilder"]

StreamKey = tuple[str, str, str]  # (producer session, run id, topic)


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
    """Accumulates records of one batch into per-table column tables.

    ``sdk_topics`` are the topics SDK clients write (metrics, events): derived rows on them
    are forged and refused (:func:`fleetlog.events.check_from_sdk`).  A record whose
    decoding or conversion raises anything at all -- a bug, or input nobody foresaw --
    becomes a dead letter with the reason, never an exception that would stop the partition;
    only ``high_water`` (a store query) may raise, and its errors are the worker's to retry.
    """

    def __init__(
        self,
        high_water: Callable[[set[StreamKey]], dict[StreamKey, int]] | None = None,
        *,
        sdk_topics: Collection[str] = (),
    ) -> None:
        self._points = _Points()
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._dead: list[DeadLetter] = []  # this stage's own; the processors' arrive as derived rows
        self._derived: dict[str, list[pa.Table]] = {}
        self._derived_schema: dict[str, pa.Schema] = {}  # what the parts of each table unify to so far
        self._high_water = high_water or (lambda keys: {})
        self._sdk_topics = frozenset(sdk_topics)
        self.landed: dict[StreamKey, int] = {}
        self.sources: dict[str, list[Record]] = {}  # table -> the records its rows came from
        self.unbuilt: dict[str, str] = {}  # table -> why tables() could not build it (see there)
        self.records = 0
        self.duplicates = 0

    def add(self, records: Iterable[Record]) -> None:
        decoded: list[tuple[Record, Envelope]] = []
        for rec in records:
            self.records += 1
            try:
                decoded.append((rec, decode_record(rec, from_sdk=rec.topic in self._sdk_topics)))
            except MemoryError:
                raise  # the process is short of memory, not the record at fault: retry, do not discard
            except Exception as exc:
                self._reject(rec, _reason(exc, "decoding"))
        unknown = {(env.session, env.run_id, rec.topic) for rec, env in decoded if env.session} - self.landed.keys()
        known = self._high_water(unknown) if unknown else {}
        for rec, env in decoded:
            if env.session:
                key = (env.session, env.run_id, rec.topic)
                if env.seq <= self.landed.get(key, known.get(key, -1)):
                    self.duplicates += 1
                    continue
                self.landed[key] = env.seq
            try:
                table = self._add(env)
            except MemoryError:
                raise
            except Exception as exc:
                self._reject(rec, _reason(exc, f"converting a {env.kind!r} event"))
            else:
                self.sources.setdefault(table, []).append(rec)

    def _reject(self, rec: Record, reason: str) -> None:
        self.dead(rec, reason)
        self.sources.setdefault("dead_letters", []).append(rec)

    def _add(self, env: Envelope) -> str:
        """Add the envelope's rows; return the table they go to."""
        if env.kind == "metrics":
            self._points.add(env)
            return "metric_points"
        if env.kind == "rows":
            return self._add_derived(env.body["table"], env.body["columns"])
        table, rows = ROW_BUILDERS[env.kind](env)
        self._rows.setdefault(table, []).extend(rows)
        return table

    def _add_derived(self, table: str, columns: dict[str, Any]) -> str:
        """Add one message's derived rows, or reject them if they cannot join the table's earlier parts.

        Checking here (not in ``tables()``) puts a message whose column types clash with
        the batch's earlier ones in dead letters instead of failing the whole batch.
        """
        if table not in DERIVED_TABLES:
            raise InvalidEvent(f"rows for unknown table {str(table)[:100]!r}")
        try:
            part = pa.table({name: _arrow_column(values) for name, values in columns.items()})
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise InvalidEvent(f"rows for {table!r} are not columns: {str(exc)[:300]}") from None
        schema = self._derived_schema.get(table)
        if schema is not None and schema != part.schema:
            try:
                schema = pa.unify_schemas([schema, part.schema], promote_options="permissive")
            except (pa.ArrowException, TypeError) as exc:
                raise InvalidEvent(
                    f"rows for {table!r} do not match this batch's earlier ones: {str(exc)[:300]}"
                ) from None
        if table == "dead_letters":  # the processors' dead letters join the sink's own in one insert
            _check_dead_letters(part.schema)
        self._derived_schema[table] = schema if schema is not None else part.schema
        self._derived.setdefault(table, []).append(part)
        return table

    def dead(self, rec: Record, reason: str) -> None:
        """Keep ``rec`` as one of this stage's dead letters, with ``reason``."""
        self._dead.append(DeadLetter.of(rec, reason, stage="sink"))

    @property
    def points(self) -> int:
        return self._points.count

    def tables(self) -> dict[str, pa.Table]:
        """The non-empty tables, ready for ``insert_arrow``; stream progress last.

        A table that cannot be built (rows of several records that Arrow cannot put in one
        column) is left out and named in ``unbuilt`` with the reason: the worker then finds
        the records at fault by halving, as it does for rows ClickHouse refuses.
        """
        out: dict[str, pa.Table] = {}
        self.unbuilt.clear()
        if self._points.count:
            self._build(out, "metric_points", self._points.table)
        for name, rows in self._rows.items():
            if rows:  # an event may carry nothing to store (tags with an empty body)
                self._build(out, name, lambda rows=rows: _rows_table(rows))
        derived = dict(self._derived)
        if self._dead:  # one insert for both stages' dead letters: two under one token would drop one
            own = pa.table({k: _arrow_column(v) for k, v in dead_letter_columns(self._dead).items()})
            derived["dead_letters"] = [own, *derived.get("dead_letters", [])]
        for name, parts in derived.items():
            if name not in self.unbuilt:  # else all of the table's records go through the halving
                self._build(out, name, partial(_concat_derived, parts))
        if self.landed:
            now = time.time()
            out["producer_streams"] = _rows_table(
                [
                    {"session": s, "run_id": r, "topic": t, "max_seq": seq, "updated_at": now}
                    for (s, r, t), seq in self.landed.items()
                ]
            )
        return out

    def _build(self, out: dict[str, pa.Table], name: str, build: Callable[[], pa.Table]) -> None:
        try:
            out[name] = build()
        except MemoryError:
            raise
        except Exception as exc:
            out.pop(name, None)
            self.unbuilt[name] = _reason(exc, f"building {name} rows")


def _concat_derived(parts: list[pa.Table]) -> pa.Table:
    """A derived table's parts as one."""
    # One dictionary per column: the insert writes an Arrow file, which cannot replace a dictionary.
    return pa.concat_tables(parts, promote_options="permissive").unify_dictionaries()


def _reason(exc: Exception, doing: str) -> str:
    """A dead letter's reason: ``InvalidEvent`` says it; anything else names the error and the step."""
    if isinstance(exc, InvalidEvent):
        return exc.reason
    return f"{type(exc).__name__} while {doing}: {str(exc)[:500]}"


def _check_dead_letters(schema: pa.Schema) -> None:
    """Refuse dead letters a processor sent in another shape than :class:`~fleetlog.events.DeadLetter`'s columns.

    Only checked, never converted: both stages build them with ``dead_letter_columns``.
    """
    names = tuple(schema.names)
    if sorted(names) != sorted(DEAD_LETTER_COLUMNS):
        raise InvalidEvent(f"dead letters from a processor in an unknown shape: columns {names[:20]!r}")
    when, payload = schema.field("received_at").type, schema.field("payload").type
    if not (pa.types.is_floating(when) or pa.types.is_integer(when)) or not pa.types.is_binary(payload):
        raise InvalidEvent(
            f"dead letters from a processor in an unknown shape: received_at is {when}, payload is {payload}"
            " (want unix seconds and bytes)"
        )


def _arrow_column(values: np.ndarray | DictColumn | list) -> pa.Array:
    """A decoded ``rows`` column as Arrow: numeric views without copying, every string column a dictionary."""
    if isinstance(values, DictColumn):
        return pa.DictionaryArray.from_arrays(pa.array(values.indices), pa.array(values.values, pa.string()))
    array = pa.array(values)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pc.dictionary_encode(array)  # a list column from an older writer: same type as the new form
    return array


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for col in rows[0]:
        values = [r[col] for r in rows]
        unit = TIME_COLUMNS.get(col)
        if unit is not None:
            scale = 1e6 if unit == "us" else 1e3
            ticks = [None if v is None else int(v * scale) for v in values]
            columns[col] = pa.array(ticks, pa.int64()).cast(pa.timestamp(unit))
        else:
            columns[col] = pa.array(values)
    return pa.table(columns)
