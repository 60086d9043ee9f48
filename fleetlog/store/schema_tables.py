"""The schema's tables as data: each table's columns, whether it replaces rows, its time column.

Read from the migrations themselves (``CREATE TABLE`` and ``ADD COLUMN`` statements),
so the read side (:mod:`fleetlog.query`) names tables and columns the schema defines
instead of guessing them, and a renamed column fails a test here rather than a query
in production.  Whether a given store *has* a table yet (an older server, processors'
tables before a processor ran) is the store's to say: ``system.tables``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fleetlog.store.schema import MIGRATIONS

__all__ = ["TABLE_SPECS", "TIME_COLUMNS", "TableSpec", "spec"]

# The column "newest first" and "since" order by, per table that has one.
TIME_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "metric_points": "ts",
        "runs": "start_time",
        "run_records": "ts",
        "run_artifacts": "ts",
        "run_logs": "ts",
        "run_heartbeats": "ts",
        "alerts": "ts",
        "rank_aggregates": "ts",
        "fleet_windows": "window_start",
        "run_summaries": "updated_at",
        "dead_letters": "received_at",
        "models": "ts",
    }
)


@dataclass(frozen=True)
class TableSpec:
    """One table of the schema: its columns in order, and how to read it."""

    name: str
    columns: tuple[str, ...]
    replacing: bool  # a ReplacingMergeTree: read with FINAL for one row per key
    time_column: str | None

    @property
    def final(self) -> str:
        """``" FINAL"`` for a table that replaces rows, else ``""`` (to append to its name in a query)."""
        return " FINAL" if self.replacing else ""


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\n\)\s*ENGINE = \{engine:(\w+)", re.S)
_ADD = re.compile(r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+)")


def _specs() -> dict[str, TableSpec]:
    columns: dict[str, list[str]] = {}
    engines: dict[str, str] = {}
    for migration in MIGRATIONS:
        for statement in migration.statements:
            for name, body, engine in _CREATE.findall(statement):
                columns[name] = [line.split()[0] for line in body.splitlines() if line.strip()]
                engines[name] = engine
            for name, column in _ADD.findall(statement):
                columns[name].append(column)
    return {
        name: TableSpec(name, tuple(cols), "Replacing" in engines[name], TIME_COLUMNS.get(name))
        for name, cols in columns.items()
    }


TABLE_SPECS: Mapping[str, TableSpec] = MappingProxyType(_specs())


def spec(table: str) -> TableSpec:
    """The schema's table ``table``; ``KeyError`` naming the known ones if the schema has none such."""
    try:
        return TABLE_SPECS[table]
    except KeyError:
        raise KeyError(f"the schema defines no table {table!r}; it has {sorted(TABLE_SPECS)}") from None
