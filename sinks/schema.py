"""The ClickHouse schema, as ordered, versioned migrations.

One source for the embedded store and a server: each migration is a list of
statements written against a ``{engine}`` placeholder so the cluster flavour
(ReplicatedMergeTree + Distributed, in deploy/clickhouse) is generated from the
same text instead of being maintained twice.

Codecs were chosen by measuring 1M-point series (``python -m bench.codecs``):
steps are arithmetic (DoubleDelta, 0.01 B/point), times increase with jitter
(Delta, 0.8 B), and for values Delta+ZSTD has the best mean over a float32-origin
loss, an LR schedule and integer GPU utilisation (2.6 B vs 2.8 FPC, 3.2 Gorilla).

``non_replicated_deduplication_window`` makes the sink's insert deduplication
tokens effective on plain MergeTree (the default 0 would silently accept a
replayed batch twice).
"""

from __future__ import annotations

from fleetlog.sinks.schema_derived import DERIVED_MIGRATIONS, DERIVED_TABLES
from fleetlog.sinks.schema_types import Migration

__all__ = ["DERIVED_TABLES", "MIGRATIONS", "TABLES", "Migration", "render"]

DEDUP = "non_replicated_deduplication_window = 10000"


_POINTS = f"""
CREATE TABLE IF NOT EXISTS metric_points
(
    run_id LowCardinality(String),
    metric LowCardinality(String),
    rank UInt32 CODEC(T64, ZSTD(1)),
    step Int64 CODEC(DoubleDelta, ZSTD(1)),
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    value Float64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine:MergeTree}}
PARTITION BY toYYYYMM(ts)
ORDER BY (run_id, metric, rank, step)
SETTINGS {DEDUP}
"""

_RUNS = f"""
CREATE TABLE IF NOT EXISTS runs
(
    run_id String,
    project LowCardinality(String),
    experiment LowCardinality(String),
    name String,
    parent_run_id String,
    status LowCardinality(String),
    start_time DateTime64(3, 'UTC'),
    end_time Nullable(DateTime64(3, 'UTC')),
    error_type String,
    error_message String,
    error_traceback String,
    host LowCardinality(String),
    pid UInt32,
    rank UInt32,
    world_size UInt32,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(updated_at)}}
ORDER BY run_id
SETTINGS {DEDUP}
"""

_KEY_VALUE = """
CREATE TABLE IF NOT EXISTS {table}
(
    run_id String,
    key String,
    value String,
    value_type LowCardinality(String),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(updated_at)}}
ORDER BY (run_id, key)
SETTINGS {dedup}
"""

_DEAD_LETTERS = f"""
CREATE TABLE IF NOT EXISTS dead_letters
(
    received_at DateTime64(3, 'UTC'),
    stage LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    key String,
    reason String,
    payload String CODEC(ZSTD(3))
)
ENGINE = {{engine:MergeTree}}
ORDER BY (topic, partition, offset)
SETTINGS {DEDUP}
"""

# The sink's write-ahead intents: which offsets a batch covers, recorded before the
# batch is inserted, so a replay after a crash cuts the same batch and reuses its token.
_SINK_BATCHES = """
CREATE TABLE IF NOT EXISTS sink_batches
(
    topic LowCardinality(String),
    partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    created_at DateTime64(3, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree}
ORDER BY (topic, partition, first_offset)
TTL toDateTime(created_at) + INTERVAL 30 DAY
"""

_RECORDS = f"""
CREATE TABLE IF NOT EXISTS run_records
(
    run_id String,
    name String,
    type LowCardinality(String),
    description String,
    data String CODEC(ZSTD(3)),
    idx UInt64,
    step Nullable(Int64),
    ts DateTime64(3, 'UTC')
)
ENGINE = {{engine:MergeTree}}
ORDER BY (run_id, name, idx)
SETTINGS {DEDUP}
"""

_ARTIFACTS = f"""
CREATE TABLE IF NOT EXISTS run_artifacts
(
    run_id String,
    name String,
    kind LowCardinality(String),
    size UInt64,
    sha256 String,
    uri String,
    content_type LowCardinality(String),
    description String,
    inline String CODEC(ZSTD(1)),
    ts DateTime64(3, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(ts)}}
ORDER BY (run_id, name)
SETTINGS {DEDUP}
"""

_LOGS = f"""
CREATE TABLE IF NOT EXISTS run_logs
(
    run_id String,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    rank UInt32,
    stream LowCardinality(String),
    level LowCardinality(String),
    logger LowCardinality(String),
    message String CODEC(ZSTD(3)),
    seq UInt64
)
ENGINE = {{engine:MergeTree}}
ORDER BY (run_id, ts, rank, seq)
SETTINGS {DEDUP}
"""

_HEARTBEATS = """
CREATE TABLE IF NOT EXISTS run_heartbeats
(
    run_id String,
    rank UInt32,
    host LowCardinality(String),
    pid UInt32,
    ts DateTime64(3, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree(ts)}
ORDER BY (run_id, rank)
"""

# Highest sequence number landed per producer stream: a replayed spool's repeats are dropped.
_STREAMS = """
CREATE TABLE IF NOT EXISTS producer_streams
(
    session String,
    run_id String,
    topic LowCardinality(String),
    max_seq UInt64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree(max_seq)}
ORDER BY (session, run_id, topic)
"""

CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "points, runs, params, tags, dead letters, sink intents",
        (
            _POINTS,
            _RUNS,
            _KEY_VALUE.format(table="run_params", dedup=DEDUP),
            _KEY_VALUE.format(table="run_tags", dedup=DEDUP),
            _DEAD_LETTERS,
            _SINK_BATCHES,
        ),
    ),
    Migration(
        2,
        "run API: descriptions, records, artifacts, logs, properties, heartbeats, producer streams",
        (
            "ALTER TABLE runs ADD COLUMN IF NOT EXISTS description String AFTER name",
            _RECORDS,
            _ARTIFACTS,
            _LOGS,
            _KEY_VALUE.format(table="run_properties", dedup=DEDUP),
            _HEARTBEATS,
            _STREAMS,
        ),
    ),
)

MIGRATIONS: tuple[Migration, ...] = tuple(sorted(CORE_MIGRATIONS + DERIVED_MIGRATIONS, key=lambda m: m.version))

TABLES = (
    "metric_points",
    "runs",
    "run_params",
    "run_tags",
    "run_properties",
    "run_records",
    "run_artifacts",
    "run_logs",
    "run_heartbeats",
    "producer_streams",
    "dead_letters",
    "sink_batches",
)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


def render(statement: str, *, replicated: bool = False) -> str:
    """Fill ``{engine:X}`` with X, or its Replicated flavour for a cluster."""
    out = []
    rest = statement
    while "{engine:" in rest:
        head, _, tail = rest.partition("{engine:")
        engine, _, rest = tail.partition("}")
        if replicated:
            name, paren, args = engine.partition("(")
            zk = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
            engine = f"Replicated{name}({zk}{', ' + args[:-1] if paren and args[:-1] else ''})"
        out.append(head + engine)
    out.append(rest)
    return "".join(out)
