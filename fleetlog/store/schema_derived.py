"""Tables that stream processors fill (rollups, summaries, alerts...), as migrations.

Kept apart from the core schema so the processors' tables evolve on their own:
their migrations are numbered from 100 up, the core's below 100.

Every table a processor may emit a row into again (a bucket that got a late
point, a summary that moved on) is a ``ReplacingMergeTree`` whose ``version``
only grows for a given key -- read it with ``FINAL``.  Those tables are not
partitioned by time: ClickHouse only replaces rows within one partition.
"""

from __future__ import annotations

from fleetlog.store.schema_types import Migration

__all__ = ["DERIVED_MIGRATIONS", "DERIVED_TABLES"]

_DEDUP = "non_replicated_deduplication_window = 10000"

# Columns of the envelope aggregate (processors/core/aggregate.py), shared by rollups and summaries.
_AGGREGATE = """
    count UInt64,
    nonfinite UInt64,
    sum Float64 CODEC(ZSTD(1)),
    min Float64 CODEC(ZSTD(1)),
    min_step Int64 CODEC(Delta, ZSTD(1)),
    max Float64 CODEC(ZSTD(1)),
    max_step Int64 CODEC(Delta, ZSTD(1)),
    first Float64 CODEC(ZSTD(1)),
    first_step Int64 CODEC(Delta, ZSTD(1)),
    last Float64 CODEC(ZSTD(1)),
    last_step Int64 CODEC(Delta, ZSTD(1)),
    first_ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    last_ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    version UInt64"""

_ROLLUPS = f"""
CREATE TABLE IF NOT EXISTS metric_rollups
(
    run_id LowCardinality(String),
    metric LowCardinality(String),
    rank UInt32,
    resolution UInt32,
    bucket Int64 CODEC(DoubleDelta, ZSTD(1)),{_AGGREGATE}
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY (run_id, metric, rank, resolution, bucket)
SETTINGS {_DEDUP}
"""

_SUMMARIES = f"""
CREATE TABLE IF NOT EXISTS metric_summaries
(
    run_id String,
    metric LowCardinality(String),
    rank UInt32,{_AGGREGATE}
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY (run_id, metric, rank)
SETTINGS {_DEDUP}
"""

_RUN_SUMMARIES = f"""
CREATE TABLE IF NOT EXISTS run_summaries
(
    run_id String,
    project LowCardinality(String),
    experiment LowCardinality(String),
    status LowCardinality(String),
    start_time DateTime64(3, 'UTC'),
    end_time Nullable(DateTime64(3, 'UTC')),
    duration_seconds Float64,
    last_heartbeat Nullable(DateTime64(3, 'UTC')),
    last_point_time Nullable(DateTime64(3, 'UTC')),
    points UInt64,
    ranks UInt32,
    world_size UInt32,
    late_points UInt64,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY run_id
SETTINGS {_DEDUP}
"""

_RANK_AGGREGATES = f"""
CREATE TABLE IF NOT EXISTS rank_aggregates
(
    run_id LowCardinality(String),
    metric LowCardinality(String),
    step Int64 CODEC(DoubleDelta, ZSTD(1)),
    ranks UInt32,
    mean Float64 CODEC(ZSTD(1)),
    min Float64 CODEC(ZSTD(1)),
    max Float64 CODEC(ZSTD(1)),
    std Float64 CODEC(ZSTD(1)),
    slowest_rank UInt32,
    spread_seconds Float64 CODEC(ZSTD(1)),
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    complete UInt8
)
ENGINE = {{engine:ReplacingMergeTree(ranks)}}
ORDER BY (run_id, metric, step)
SETTINGS {_DEDUP}
"""

_FLEET_WINDOWS = f"""
CREATE TABLE IF NOT EXISTS fleet_windows
(
    window_seconds UInt32,
    window_start DateTime64(3, 'UTC'),
    scope LowCardinality(String),
    key String,
    run_id String,
    project LowCardinality(String),
    points UInt64,
    gpu_util_sum Float64,
    gpu_util_count UInt64,
    heartbeats UInt64,
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY (window_seconds, scope, key, window_start, run_id)
TTL toDateTime(window_start) + INTERVAL 30 DAY
SETTINGS {_DEDUP}
"""

# Each run contributes one row per window; this sums them into what a fleet dashboard shows.
_FLEET_TOTALS = """
CREATE VIEW IF NOT EXISTS fleet_window_totals AS
SELECT
    window_seconds,
    window_start,
    scope,
    key,
    sum(points) AS points,
    count() AS active_runs,
    if(sum(gpu_util_count) > 0, sum(gpu_util_sum) / sum(gpu_util_count), nan) AS gpu_util_mean
FROM fleet_windows FINAL
GROUP BY window_seconds, window_start, scope, key
"""

_ALERTS = f"""
CREATE TABLE IF NOT EXISTS alerts
(
    run_id String,
    experiment LowCardinality(String),
    metric LowCardinality(String),
    rank UInt32,
    step Int64,
    ts DateTime64(3, 'UTC'),
    rule LowCardinality(String),
    value Float64,
    threshold Float64,
    message String
)
ENGINE = {{engine:ReplacingMergeTree}}
ORDER BY (run_id, rule, metric, rank, step)
SETTINGS {_DEDUP}
"""

# Written by the SDK's run.set_alert (a rows event), read by the processors from the same event.
_ALERT_RULES = f"""
CREATE TABLE IF NOT EXISTS alert_rules
(
    run_id String,
    metric String,
    above Nullable(Float64),
    below Nullable(Float64),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(updated_at)}}
ORDER BY (run_id, metric)
SETTINGS {_DEDUP}
"""

DERIVED_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        100,
        "stream processors: rollups, summaries, rank aggregates, fleet windows, alerts, alert rules",
        (
            _ROLLUPS,
            _SUMMARIES,
            _RUN_SUMMARIES,
            _RANK_AGGREGATES,
            _FLEET_WINDOWS,
            _FLEET_TOTALS,
            _ALERTS,
            _ALERT_RULES,
        ),
    ),
)

# Tables the sink accepts ``rows`` events for; anything else goes to dead_letters.
# ``dead_letters`` is the core table: the processors' dead letters land beside the sink's (stage = processor).
DERIVED_TABLES: frozenset[str] = frozenset(
    {
        "metric_rollups",
        "metric_summaries",
        "run_summaries",
        "rank_aggregates",
        "fleet_windows",
        "alerts",
        "alert_rules",
        "dead_letters",
    }
)
