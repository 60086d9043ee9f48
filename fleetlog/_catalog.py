"""Which optional tables the store has, and what their columns are called.

The core tables (``metric_points``, ``runs``, ``run_params``, ``run_tags``) always
exist. Others appear as the schema grows: tables the stream processors fill
(rollups, summaries, alerts, fleet windows) and the SDK's richer record kinds
(logs, tables, images). Readers look them up here by *kind* and fall back when a
kind has no table, so the query API works on any store version.

The catalog is read from ``system.tables``/``system.columns`` and cached for a few
seconds per store, so a table created while the dashboard runs is picked up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

__all__ = ["KINDS", "Catalog", "RollupColumns", "catalog"]

# kind -> table names that hold it, preferred first
KINDS: dict[str, tuple[str, ...]] = {
    "rollups": ("metric_rollups", "rollups", "metric_rollup"),
    "summaries": ("metric_summaries", "run_metric_summaries", "summaries"),
    "alerts": ("alerts", "run_alerts"),
    "fleet": ("fleet_windows", "fleet"),
    "logs": ("run_logs", "logs"),
    "records": ("run_records",),
    "artifacts": ("run_artifacts",),
    "heartbeats": ("run_heartbeats",),
}
_TIME_COLUMNS = ("ts", "time", "timestamp", "logged_at", "created_at", "raised_at", "received_at", "window_start")
_NAME_COLUMNS = ("name", "table_name", "table", "key")
_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class RollupColumns:
    """How a rollup table names what :mod:`fleetlog._series` reads from it."""

    resolution: str
    bucket: str | None  # a bucket start step or index; None: derived from min_step
    bucket_is_index: bool
    count: str
    min: str
    max: str
    sum: str
    min_step: str
    max_step: str
    last: str | None
    rank: str | None
    nonfinite: str | None = None  # when present, ``count`` includes NaN/inf and ``sum`` does not


def _pick(columns: Mapping[str, str], *names: str) -> str | None:
    return next((n for n in names if n in columns), None)


@dataclass(frozen=True)
class Catalog:
    """Tables of the reader's database: name -> {column: type}, and each table's engine."""

    tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    engines: Mapping[str, str] = field(default_factory=dict)

    def has(self, table: str) -> bool:
        return table in self.tables

    def find(self, kind: str) -> str | None:
        """The table holding ``kind`` (see ``KINDS``), or None when the store has none yet."""
        return next((t for t in KINDS[kind] if t in self.tables), None)

    def columns(self, table: str) -> Mapping[str, str]:
        return self.tables.get(table, {})

    def is_replacing(self, table: str) -> bool:
        return "Replacing" in self.engines.get(table, "") or "Collapsing" in self.engines.get(table, "")

    def time_column(self, table: str) -> str | None:
        return _pick(self.columns(table), *_TIME_COLUMNS)

    def name_column(self, table: str) -> str | None:
        return _pick(self.columns(table), *_NAME_COLUMNS)

    def rollup_columns(self, table: str) -> RollupColumns | None:
        """The rollup table's column names, or None if it lacks what bucket merging needs."""
        cols = self.columns(table)
        if any(t.startswith("AggregateFunction") for t in cols.values()):
            return None
        start = _pick(cols, "bucket_start", "start_step", "bucket_step")
        index = _pick(cols, "bucket", "bucket_index")
        names = {
            "resolution": _pick(cols, "resolution", "bucket_steps", "bucket_size", "width"),
            "count": _pick(cols, "count", "n", "points"),
            "min": _pick(cols, "min", "min_value", "vmin", "value_min"),
            "max": _pick(cols, "max", "max_value", "vmax", "value_max"),
            "sum": _pick(cols, "sum", "sum_value", "value_sum"),
            # the bucket's step span (min_step/max_step may instead name where the extremes were)
            "min_step": _pick(cols, "first_step", "step_min", "min_step"),
            "max_step": _pick(cols, "last_step", "step_max", "max_step"),
        }
        if None in names.values() or not {"run_id", "metric"} <= set(cols):
            return None
        return RollupColumns(
            **names,  # type: ignore[arg-type]
            bucket=start or index,
            bucket_is_index=start is None and index is not None,
            last=_pick(cols, "last", "last_value", "value_last"),
            rank=_pick(cols, "rank"),
            nonfinite=_pick(cols, "nonfinite", "nan_count"),
        )


_cache: dict[str, tuple[float, Catalog]] = {}
_lock = threading.Lock()


def catalog(client: Client, key: str, *, max_age_seconds: float = _TTL_SECONDS) -> Catalog:
    """The store's catalog, read at most every ``max_age_seconds`` per ``key`` (the store's URL)."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < max_age_seconds:
        return hit[1]
    rows = client.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() ORDER BY table, position"
    ).result_rows
    engines = client.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").result_rows
    tables: dict[str, dict[str, str]] = {}
    for table, name, kind in rows:
        tables.setdefault(table, {})[name] = kind
    found = Catalog(tables=tables, engines=dict(engines))
    with _lock:
        _cache[key] = (now, found)
    return found
