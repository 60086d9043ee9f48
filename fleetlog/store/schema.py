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

Statements hold two kinds of placeholder that :func:`render` fills:
``{engine:X}`` (X, or ReplicatedX on a cluster) and ``{partition:col}`` (the
``PARTITION BY`` clause :class:`SchemaOptions` asks for, applied when a table is
created).  Retention (TTL) is not a migration: :func:`retention_statements` says
what the tables' TTL should be and the store brings them to it on every start,
so changing ``FLEETLOG_RAW_TTL_DAYS`` also updates an existing store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fleetlog.store.schema_derived import DERIVED_MIGRATIONS, DERIVED_TABLES
from fleetlog.store.schema_types import Migration

__all__ = [
    "DERIVED_TABLES",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "PARTITIONS",
    "TABLES",
    "TTL_TABLES",
    "Migration",
    "SchemaOptions",
    "render",
    "retention_statements",
    "ttl_expression",
]

DEDUP = "non_replicated_deduplication_window = 10000"

# Partition granularities for raw points: fewer, larger partitions are better (a few hundred at most).
PARTITIONS = {"month": "toYYYYMM({col})", "week": "toMonday({col})", "day": "toDate({col})", "none": ""}

# Tables whose rows expire, and the time column their TTL counts from.
TTL_TABLES = {"metric_points": "ts", "run_logs": "ts"}


@dataclass(frozen=True, kw_only=True)
class SchemaOptions:
    """Choices a deployment makes about layout and retention (``FLEETLOG_RAW_*``).

    ``raw_partition`` applies when ``metric_points`` is created; the TTLs apply on every
    start. A TTL of 0 keeps rows forever. Rollups and summaries never expire.
    """

    raw_ttl_days: int = 90
    logs_ttl_days: int = 90
    raw_partition: str = "month"

    def __post_init__(self) -> None:
        if self.raw_partition not in PARTITIONS:
            raise ValueError(f"raw_partition must be one of {sorted(PARTITIONS)}, not {self.raw_partition!r}")
        if self.raw_ttl_days < 0 or self.logs_ttl_days < 0:
            raise ValueError("TTL days must be >= 0 (0 keeps rows forever)")

    def ttl_days(self, table: str) -> int:
        return self.raw_ttl_days if table == "metric_points" else self.logs_ttl_days


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
{{partition:ts}}
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

# The model registry: one row per (name, version).  The sink numbers versions (fleetlog.sinks._models);
# a registration id already stored is never inserted again, so a name's versions are 1, 2, 3... exactly once.
_MODELS = f"""
CREATE TABLE IF NOT EXISTS models
(
    name String,
    version UInt32,
    registration_id String,
    run_id String,
    experiment LowCardinality(String),
    project LowCardinality(String),
    url String,
    path String,
    description String,
    tags String,
    properties String,
    size UInt64,
    ts DateTime64(3, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(ts)}}
ORDER BY (name, version)
SETTINGS {DEDUP}
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
    Migration(
        3,
        "retention: expired raw points leave by whole parts (TTL itself follows FLEETLOG_RAW_TTL_DAYS)",
        ("ALTER TABLE metric_points MODIFY SETTING ttl_only_drop_parts = 1",),
    ),
    Migration(4, "model registry: models (name, version, run, files' url, tags, properties)", (_MODELS,)),
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
    "models",
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
ENGINE = {engine:ReplacingMergeTree}
ORDER BY version
"""


def render(
    statement: str, *, replicated: bool = False, options: SchemaOptions | None = None, shard: str = "{shard}"
) -> str:
    """Fill ``{engine:X}`` with X (or its Replicated flavour) and ``{partition:col}``.

    ``shard`` names the replication path's shard: ``{shard}`` (the server's macro) for
    sharded tables, a fixed name for tables every server keeps whole.
    """
    options = options or SchemaOptions()
    statement = _fill(statement, "{partition:", lambda col: _partition(options.raw_partition, col))
    if not replicated:
        return _fill(statement, "{engine:", lambda engine: engine)
    return _fill(statement, "{engine:", lambda engine: _replicated(engine, shard))


def _fill(statement: str, marker: str, replace: Callable[[str], str]) -> str:
    out = []
    rest = statement
    while marker in rest:
        head, _, tail = rest.partition(marker)
        arg, _, rest = tail.partition("}")
        out.append(head + replace(arg))
    out.append(rest)
    return "".join(out)


def _partition(granularity: str, column: str) -> str:
    expression = PARTITIONS[granularity].format(col=column)
    return f"PARTITION BY {expression}" if expression else ""


def _replicated(engine: str, shard: str) -> str:
    name, paren, args = engine.partition("(")
    zk = f"'/clickhouse/tables/{shard}/{{database}}/{{table}}', '{{replica}}'"
    return f"Replicated{name}({zk}{', ' + args[:-1] if paren and args[:-1] else ''})"


def ttl_expression(table: str, days: int) -> str | None:
    """The TTL clause's expression for ``table`` (None: keep forever)."""
    return f"toDateTime({TTL_TABLES[table]}) + toIntervalDay({days})" if days else None


def retention_statements(engine_full: dict[str, str], options: SchemaOptions) -> list[str]:
    """ALTERs that bring each TTL table to the configured retention; nothing if it is there.

    ``engine_full`` is ``system.tables.engine_full`` by table name, where ClickHouse
    spells the TTL as ``TTL toDateTime(ts) + toIntervalDay(90)``.
    """
    statements = []
    for table in TTL_TABLES:
        current = engine_full.get(table)
        if current is None or not current.removeprefix("Replicated").startswith("MergeTree"):
            continue  # absent, or a Distributed table over a cluster's local ones (see deploy/clickhouse)
        wanted = ttl_expression(table, options.ttl_days(table))
        has_ttl = " TTL " in f" {current} "
        if wanted is None and has_ttl:
            statements.append(f"ALTER TABLE {table} REMOVE TTL")
        elif wanted is not None and f"TTL {wanted}" not in current:
            statements.append(f"ALTER TABLE {table} MODIFY TTL {wanted}")
    return statements
