"""Derived rows -> ``rows`` envelopes the sink already knows how to insert.

One envelope per table per run per batch, keyed by run id like everything else,
split so that no message exceeds ``max_bytes`` (a batch of fine rollups for a
busy run can be many megabytes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fleetlog.events import Envelope, encode

__all__ = ["DEAD_LETTER_RUN", "concat_columns", "rows_messages"]

# The run id (and key) that dead-letter rows travel under: they belong to no run.
DEAD_LETTER_RUN = "-dead-letters-"


def concat_columns(parts: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Several column dicts of one table -> one, as plain lists (what msgpack encodes)."""
    out: dict[str, list] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(values.tolist() if isinstance(values, np.ndarray) else values)
    return out


def _length(columns: Mapping[str, list]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def rows_messages(run_id: str, table: str, columns: Mapping[str, list], *, max_bytes: int) -> Iterator[bytes]:
    """Encode rows for ``table`` as one or more ``rows`` envelopes under ``max_bytes`` each.

    No producer session: the sink's sequence-number de-duplication is for SDK
    streams; derived rows are idempotent through their table's version column.
    """
    n = _length(columns)
    if not n:
        return
    sample = _encode(run_id, table, columns, 0, min(n, 1000))
    per_message = max(1, int(0.8 * max_bytes * min(n, 1000) / len(sample)))
    for lo in range(0, n, per_message):
        yield from _fitting(run_id, table, columns, lo, min(n, lo + per_message), max_bytes)


def _fitting(run_id: str, table: str, columns: Mapping[str, list], lo: int, hi: int, max_bytes: int) -> Iterator[bytes]:
    """Rows ``lo:hi`` in one message, or halves of them when rows were larger than the sample's."""
    message = _encode(run_id, table, columns, lo, hi)
    if len(message) <= max_bytes or hi - lo == 1:
        yield message
        return
    mid = (lo + hi) // 2
    yield from _fitting(run_id, table, columns, lo, mid, max_bytes)
    yield from _fitting(run_id, table, columns, mid, hi, max_bytes)


def _encode(run_id: str, table: str, columns: Mapping[str, list], lo: int, hi: int) -> bytes:
    body = {"table": table, "columns": {k: v[lo:hi] for k, v in columns.items()}}
    return encode(Envelope(kind="rows", run_id=run_id, sent_at=time.time(), body=body))
