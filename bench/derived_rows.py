"""Derived rows on the wire: list columns (the old form) against typed buffers and dictionaries.

Run: ``python -m bench.derived_rows [rows]``.  Times, for rank_aggregates-shaped rows
(one per metric and step, as a two-rank run emits them), the processor side
(``concat_columns`` + ``rows_messages``: columns to Kafka messages) and the sink
side (``decode`` + Arrow table per message + the batch's concatenation), and
prints microseconds per row for both forms and the ratio.  One core, no Kafka.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from fleetlog.processors.core.rows import cross_rows
from fleetlog.processors.emit import concat_columns, rows_messages
from fleetlog.sinks.rows import Record, TableBuilder

from fleetlog.events import decode

ROWS = 200_000
PART_ROWS = 5_000  # rows of one run and table in one processor batch (30 metrics x ~170 steps)
PARTS_PER_CALL = 2  # parts joined by one concat_columns call
METRICS = [f"train/metric_{i:02d}" for i in range(30)]
MAX_BYTES = 900_000
REPEATS = 3


def _found(n: int, first_step: int) -> dict[str, np.ndarray]:
    """What processors/core/ranks.py hands to cross_rows for ``n`` (metric, step) pairs."""
    rng = np.random.default_rng(first_step)
    step = first_step + np.arange(n) // len(METRICS)
    ts = 1_700_000_000_000 + step * 100
    return {
        "metric": (np.arange(n) % len(METRICS)).astype(np.int32),
        "step": step.astype(np.int64),
        "ranks": np.full(n, 2, np.int64),
        "mean": rng.random(n),
        "min": rng.random(n),
        "max": rng.random(n),
        "std": rng.random(n),
        "slowest_rank": rng.integers(0, 2, n),
        "spread_ms": rng.integers(0, 50, n),
        "ts": ts,
        "complete": np.ones(n, np.uint8),
    }


def _old_part(found: dict[str, np.ndarray]) -> dict[str, Any]:
    """cross_rows as it was: object arrays of names and a Python list of run ids."""
    n = len(found["step"])
    cols = dict(cross_rows("r", METRICS, found))
    cols["run_id"] = ["r"] * n
    cols["metric"] = np.array([*METRICS, ""], dtype=object)[found["metric"].astype(np.int64)]
    return cols


def _old_concat(parts: Sequence[dict[str, Any]]) -> dict[str, list]:
    """concat_columns as it was: every value a Python object."""
    out: dict[str, list] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(values.tolist() if isinstance(values, np.ndarray) else values)
    return out


def _encode(calls: list[list[dict[str, Any]]], concat: Callable[[Sequence[dict[str, Any]]], dict]) -> list[bytes]:
    out: list[bytes] = []
    for parts in calls:
        out.extend(rows_messages("r", "rank_aggregates", concat(parts), max_bytes=MAX_BYTES))
    return out


def _old_sink(messages: list[bytes]) -> pa.Table:
    """TableBuilder's rows branch as it was: ``pa.table`` over decoded Python lists."""
    parts = [pa.table(decode(m).body["columns"]) for m in messages]
    return pa.concat_tables(parts, promote_options="permissive")


def _new_sink(messages: list[bytes]) -> pa.Table:
    builder = TableBuilder()
    builder.add(Record("t.derived", 0, i, b"r", m) for i, m in enumerate(messages))
    return builder.tables()["rank_aggregates"]


def _best(fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    rows = int(args[0]) if args else ROWS
    found = [_found(PART_ROWS, i * PART_ROWS) for i in range(max(1, rows // PART_ROWS))]
    rows = len(found) * PART_ROWS
    new_parts = [cross_rows("r", METRICS, f) for f in found]
    old_parts = [_old_part(f) for f in found]
    group = PARTS_PER_CALL
    new_calls = [new_parts[i : i + group] for i in range(0, len(new_parts), group)]
    old_calls = [old_parts[i : i + group] for i in range(0, len(old_parts), group)]

    enc_old, old_msgs = _best(lambda: _encode(old_calls, _old_concat))
    enc_new, new_msgs = _best(lambda: _encode(new_calls, concat_columns))
    dec_old, old_table = _best(lambda: _old_sink(old_msgs))
    dec_new, new_table = _best(lambda: _new_sink(new_msgs))
    assert old_table.num_rows == new_table.num_rows == rows
    assert old_table.column("metric").to_pylist() == new_table.column("metric").to_pylist()
    assert old_table.column("mean").to_pylist() == new_table.column("mean").to_pylist()

    us = 1e6 / rows
    print(f"{rows:,} rank_aggregates rows, {len(METRICS)} metrics, parts of {PART_ROWS:,}, best of {REPEATS}")
    print(f"{'':34}{'old (lists)':>14}{'new (typed)':>14}{'old/new':>10}")
    print(f"{'processor: concat + encode µs/row':34}{enc_old * us:14.3f}{enc_new * us:14.3f}{enc_old / enc_new:10.1f}")
    print(f"{'sink: decode + Arrow µs/row':34}{dec_old * us:14.3f}{dec_new * us:14.3f}{dec_old / dec_new:10.1f}")
    old_bytes, new_bytes = sum(map(len, old_msgs)), sum(map(len, new_msgs))
    print(f"{'wire bytes/row':34}{old_bytes / rows:14.1f}{new_bytes / rows:14.1f}{old_bytes / new_bytes:10.2f}")
    print(f"{'messages':34}{len(old_msgs):14d}{len(new_msgs):14d}")


if __name__ == "__main__":
    main()
