"""Typed columns of derived ``rows``: numeric buffers and dictionary-encoded strings.

A processor emits about one derived row per two raw points, so a numeric column
travels as one raw buffer with its dtype and a string column as a dictionary plus
an index buffer (:class:`DictColumn`).  Columns that hold nulls or other objects,
and every column of older writers, travel as plain lists; a reader accepts both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetlog.errors import InvalidEvent
from fleetlog.events.limits import I32, MAX_COLUMNS, MAX_NAMES, MAX_ROWS, require

__all__ = ["ROW_DTYPES", "DictColumn", "read_rows_body", "wire_rows_body"]

# The dtypes a typed ``rows`` column may declare: fixed-width little-endian numbers and bools, nothing
# a reader would have to interpret (no objects, no datetimes: times travel as float unix seconds).
ROW_DTYPES: frozenset[str] = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"})


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
        indices = np.fromiter((table.setdefault(s, len(table)) for s in strings), I32)
        return cls(tuple(table), indices)

    @classmethod
    def repeat(cls, value: str, n: int) -> DictColumn:
        """One string ``n`` times (a run id beside every row of its run)."""
        return cls((value,), np.zeros(n, I32))

    @classmethod
    def concat(cls, parts: Sequence[DictColumn]) -> DictColumn:
        """Parts with their own dictionaries -> one column over the union of them."""
        table: dict[str, int] = {}
        chunks = []
        for part in parts:
            lut = np.fromiter((table.setdefault(v, len(table)) for v in part.values), I32, len(part.values))
            chunks.append(lut[part.indices])
        return cls(tuple(table), np.concatenate(chunks) if chunks else np.empty(0, I32))

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
            return DictColumn((), self.indices.astype(I32, copy=False))
        used = np.bincount(self.indices, minlength=len(self.values)) > 0
        if used.all():
            return self
        remap = (np.cumsum(used) - 1).astype(I32)
        kept = tuple(v for v, keep in zip(self.values, used.tolist(), strict=True) if keep)
        return DictColumn(kept, remap[self.indices])


def wire_rows_body(body: Any) -> Any:
    """A ``rows`` body with numpy and dictionary columns in their binary wire form (lists stay lists)."""
    columns = body.get("columns") if isinstance(body, Mapping) else None
    if not isinstance(columns, Mapping):
        return body
    return {**body, "columns": {name: _wire_column(values) for name, values in columns.items()}}


def _wire_column(values: Any) -> Any:
    if isinstance(values, DictColumn):
        c = values.compact()
        return {"dictionary": list(c.values), "indices": c.indices.astype(I32, copy=False).tobytes()}
    if isinstance(values, np.ndarray):
        dtype = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
        if dtype.str in ROW_DTYPES:
            return {"dtype": dtype.str, "data": np.ascontiguousarray(values, dtype).tobytes()}
        return values.tolist()  # objects, datetimes...: only msgpack knows how to carry them
    return values


def read_rows_body(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a decoded ``rows`` body and turn its binary columns into read-only numpy views."""
    table = require(body, "table", str)
    columns = require(body, "columns", dict)
    if not table or not columns:
        raise InvalidEvent("a rows event needs a table name and at least one column")
    if len(columns) > MAX_COLUMNS:
        raise InvalidEvent(f"rows for {table[:100]!r} have {len(columns)} columns (at most {MAX_COLUMNS})")
    decoded = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise InvalidEvent(f"rows column name {str(name)[:100]!r} is not a string")
        decoded[name] = _read_column(name, values)
    if len({len(values) for values in decoded.values()}) != 1:
        raise InvalidEvent(f"rows columns for {table[:100]!r} have different lengths")
    return {**body, "columns": decoded}


def _read_column(name: str, values: Any) -> list | np.ndarray | DictColumn:
    what = f"rows column {name[:100]!r}"
    if isinstance(values, list):
        if len(values) > MAX_ROWS:
            raise InvalidEvent(f"{what} has {len(values)} rows (at most {MAX_ROWS})")
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
        if not isinstance(strings, list) or len(strings) > MAX_NAMES or not all(isinstance(x, str) for x in strings):
            raise InvalidEvent(f"{what}: 'dictionary' must be a list of at most {MAX_NAMES} strings")
        indices = np.frombuffer(_buffer(what, values, "indices", I32), I32)
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
    if len(data) // dtype.itemsize > MAX_ROWS:
        raise InvalidEvent(f"{what} has {len(data) // dtype.itemsize} rows (at most {MAX_ROWS})")
    return data
