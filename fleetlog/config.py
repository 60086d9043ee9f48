"""Settings shared by every stage: one ``FLEETLOG_*`` prefix, one precedence rule.

Precedence is defaults < environment < explicit arguments, and it is applied here
and nowhere else.  The object is frozen and keyword-only so that a stage can hand
it to another thread without anyone mutating it underneath.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "BUFFER_WHEN_FULL",
    "DEFAULT_RANK_METRICS",
    "ENV_VARS",
    "SECRET_SETTINGS",
    "Settings",
    "is_loopback",
    "mask_url",
]


def _default_home() -> Path:
    return Path.home() / ".fleetlog"


# Metrics that differ between data-parallel ranks (each sees its own batches); what all-reduce makes
# equal on every rank (gradient norms, learning rate) would only double the stored rows.
DEFAULT_RANK_METRICS = "loss|acc|throughput|per_sec|step_time"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where things live and how stages reach each other.

    Durations carry their unit in the name; conversion to a library's own unit
    (aiokafka's ``*_ms``) happens at the one place that calls the library.
    """

    home: Path = field(default_factory=_default_home)
    kafka_bootstrap: str = "127.0.0.1:9092"
    clickhouse_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8123
    store_writer_password: str = ""
    store_reader_password: str = ""
    store_max_query_seconds: float = 60.0
    store_max_query_memory_bytes: int = 4 << 30
    ui_host: str = "127.0.0.1"
    ui_port: int = 8765
    ui_token: str = ""
    topic_prefix: str = "fleetlog"
    topic_partitions: int = 4
    topic_replication: int = 1
    mode: str = "online"
    flush_interval_seconds: float = 0.2
    max_buffer_points: int = 1_000_000
    max_message_bytes: int = 900_000
    sink_batch_rows: int = 200_000
    sink_batch_seconds: float = 0.5
    sink_derived_batch_seconds: float = 2.0
    sink_batch_bytes: int = 32 << 20
    sink_instance_id: str = ""
    raw_ttl_days: int = 90
    logs_ttl_days: int = 90
    raw_partition: str = "month"
    spool_max_bytes: int = 1 << 30
    buffer_when_full: str = "spool"
    block_timeout_seconds: float = 10.0
    heartbeat_interval_seconds: float = 5.0
    telemetry_interval_seconds: float = 10.0
    artifacts_url: str = ""
    inline_max_bytes: int = 256 << 10
    outputs_dir: str = "./outputs"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    rollup_resolutions: str = "10,100,1000,10000"
    rollup_retained_buckets: int = 2
    lost_run_timeout_seconds: float = 120.0
    rank_timeout_seconds: float = 30.0
    straggler_factor: float = 1.5
    straggler_patience: int = 3
    spike_factor: float = 3.0
    spike_window_points: int = 20
    spike_metrics: str = "loss"
    rank_metrics: str = DEFAULT_RANK_METRICS
    gpu_metrics: str = r"gpu\d*[_./]?util"
    fleet_windows: str = "10,60"
    processor_batch_records: int = 64
    processor_batch_seconds: float = 0.5
    processor_state_retention_seconds: float = 3600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if not self.clickhouse_url:
            object.__setattr__(self, "clickhouse_url", f"chdb://{self.home / 'store'}")
        if not self.artifacts_url:
            object.__setattr__(self, "artifacts_url", (self.home / "artifacts").as_uri())
        if self.mode not in ("online", "offline"):
            raise ValueError(f"FLEETLOG_MODE must be 'online' or 'offline', not {self.mode!r}")
        if min(self.store_max_query_seconds, self.store_max_query_memory_bytes) <= 0:
            raise ValueError(
                "FLEETLOG_STORE_MAX_QUERY_SECONDS and FLEETLOG_STORE_MAX_QUERY_MEMORY_BYTES must be positive"
            )
        if min(self.flush_interval_seconds, self.sink_batch_seconds, self.sink_derived_batch_seconds) <= 0:
            raise ValueError("FLEETLOG_FLUSH_INTERVAL and the FLEETLOG_SINK_*BATCH_SECONDS must be positive")
        if self.buffer_when_full not in BUFFER_WHEN_FULL:
            raise ValueError(
                f"FLEETLOG_BUFFER_WHEN_FULL must be one of {BUFFER_WHEN_FULL}, not {self.buffer_when_full!r}"
            )
        if not 0 < self.block_timeout_seconds < float("inf"):
            raise ValueError("FLEETLOG_BLOCK_TIMEOUT must be a positive, finite number of seconds")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``FLEETLOG_*`` variables, then apply ``overrides``.

        Unknown override names raise ``TypeError`` (a typo must not be silently ignored);
        ``None`` overrides mean "not given" so CLI flags can be passed straight through.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, _doc) in ENV_VARS.items():
            if var in env and env[var] != "":
                values[name] = _coerce(name, env[var])
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"unknown setting {name!r}; known settings: {sorted(known)}")
            if value is not None:
                values[name] = value
        return cls(**values)

    # Topic names live here so that producer, processor and sink can never disagree.
    @property
    def metrics_topic(self) -> str:
        return f"{self.topic_prefix}.metrics"

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.dead-letters"

    @property
    def derived_topic(self) -> str:
        """Rows the stream processors derive (rollups, summaries, alerts...), for the sink."""
        return f"{self.topic_prefix}.derived"

    @property
    def alerts_topic(self) -> str:
        """Alerts the stream processors raise, as rows for the ``alerts`` table (subscribe to be notified)."""
        return f"{self.topic_prefix}.alerts"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def is_embedded_store(self) -> bool:
        return self.clickhouse_url.startswith("chdb://")

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.ui_host}:{self.ui_port}"

    def child_env(self, *, secrets: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a fleetlog child process reads these settings from.

        ``base`` (default ``os.environ``) plus every ``FLEETLOG_*`` setting, except the secrets
        (:data:`SECRET_SETTINGS`) not named in ``secrets``: those are left out, and removed from
        ``base`` too, so a child holds only the secrets its job needs.
        """
        keep = set(secrets)
        unknown = keep - SECRET_SETTINGS
        if unknown:
            raise ValueError(f"not secret settings: {sorted(unknown)}")
        dropped = {ENV_VARS[name][0] for name in SECRET_SETTINGS - keep}
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in dropped}
        for name, (var, _doc) in ENV_VARS.items():
            if var not in dropped:
                env[var] = str(getattr(self, name))
        return env

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka keyword arguments for TLS and SASL (nothing for the plaintext default)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if "SSL" in self.kafka_security_protocol:
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile or None)
        if "SASL" in self.kafka_security_protocol:
            kwargs.update(
                sasl_mechanism=self.kafka_sasl_mechanism or "SCRAM-SHA-512",
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        return kwargs

    def __repr__(self) -> str:
        """Never shows secrets: passwords in URLs, the store's and SASL's passwords and the UI token."""
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_SETTINGS and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            fields.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(fields)})"


# Settings that are secrets: masked in repr, and passed to a child process only when it needs them.
SECRET_SETTINGS = frozenset({"store_writer_password", "store_reader_password", "ui_token", "kafka_sasl_password"})

# What the SDK does when its in-memory buffer is full (Vector's when_full): "spool" moves the excess to the
# on-disk spool and replays it in order; "drop_newest" drops and counts; "block" waits block_timeout_seconds.
BUFFER_WHEN_FULL = ("spool", "drop_newest", "block")

# setting name -> (environment variable, one line for the README's table)
ENV_VARS: dict[str, tuple[str, str]] = {
    "home": ("FLEETLOG_HOME", "state directory: store, spool, broker data, logs (default ~/.fleetlog)"),
    "kafka_bootstrap": ("FLEETLOG_KAFKA", "Kafka bootstrap servers, comma separated (default 127.0.0.1:9092)"),
    "clickhouse_url": (
        "FLEETLOG_CLICKHOUSE",
        "chdb:///abs/path (embedded, default $FLEETLOG_HOME/store) or http(s)://user:pass@host:port/db",
    ),
    "http_host": ("FLEETLOG_HTTP_HOST", "address of the embedded store's ClickHouse HTTP endpoint (127.0.0.1)"),
    "http_port": ("FLEETLOG_HTTP_PORT", "port of that endpoint (8123, ClickHouse's own)"),
    "store_writer_password": (
        "FLEETLOG_STORE_WRITER_PASSWORD",
        "the embedded store's writer password (default: generated into $FLEETLOG_HOME/credentials/store.json)",
    ),
    "store_reader_password": (
        "FLEETLOG_STORE_READER_PASSWORD",
        "the embedded store's read-only reader password (default: generated, as the writer's)",
    ),
    "store_max_query_seconds": (
        "FLEETLOG_STORE_MAX_QUERY_SECONDS",
        "the embedded store's endpoint stops any query after this many seconds (60)",
    ),
    "store_max_query_memory_bytes": (
        "FLEETLOG_STORE_MAX_QUERY_MEMORY_BYTES",
        "memory one query through that endpoint may use (4294967296)",
    ),
    "ui_host": ("FLEETLOG_UI_HOST", "address the dashboard (fleetlog ui) binds (127.0.0.1)"),
    "ui_port": ("FLEETLOG_UI_PORT", "port of the dashboard (8765)"),
    "ui_token": ("FLEETLOG_UI_TOKEN", "token the dashboard requires (required off loopback)"),
    "topic_prefix": ("FLEETLOG_TOPIC_PREFIX", "prefix of every Kafka topic (fleetlog)"),
    "topic_partitions": ("FLEETLOG_TOPIC_PARTITIONS", "partitions of topics fleetlog creates (4)"),
    "topic_replication": ("FLEETLOG_TOPIC_REPLICATION", "replication factor of topics fleetlog creates (1)"),
    "mode": ("FLEETLOG_MODE", "online (ship to Kafka) or offline (spool to disk, replay with fleetlog sync)"),
    "flush_interval_seconds": ("FLEETLOG_FLUSH_INTERVAL", "seconds between SDK sends (0.2)"),
    "max_buffer_points": ("FLEETLOG_MAX_BUFFER_POINTS", "points the SDK holds in memory before spooling (1e6)"),
    "max_message_bytes": ("FLEETLOG_MAX_MESSAGE_BYTES", "largest Kafka message the SDK produces (900000)"),
    "sink_batch_rows": ("FLEETLOG_SINK_BATCH_ROWS", "rows per ClickHouse insert (200000)"),
    "sink_batch_seconds": ("FLEETLOG_SINK_BATCH_SECONDS", "longest a row waits before insert (0.5)"),
    "sink_derived_batch_seconds": (
        "FLEETLOG_SINK_DERIVED_BATCH_SECONDS",
        "longest a processor's derived row (rollups, summaries...) waits before insert (2.0)",
    ),
    "sink_batch_bytes": ("FLEETLOG_SINK_BATCH_BYTES", "Kafka bytes per ClickHouse insert, at most (33554432)"),
    "sink_instance_id": (
        "FLEETLOG_SINK_INSTANCE_ID",
        "stable name of this sink in its group: a restart takes its partitions back at once (empty: dynamic)",
    ),
    "raw_ttl_days": ("FLEETLOG_RAW_TTL_DAYS", "days raw points are kept; 0 keeps them forever (90)"),
    "logs_ttl_days": ("FLEETLOG_LOGS_TTL_DAYS", "days captured log lines are kept; 0 keeps them forever (90)"),
    "raw_partition": (
        "FLEETLOG_RAW_PARTITION",
        "metric_points partitions when created: month, week, day, none (month)",
    ),
    "spool_max_bytes": ("FLEETLOG_SPOOL_MAX_BYTES", "disk the SDK may spool to while Kafka is away (1 GiB)"),
    "buffer_when_full": (
        "FLEETLOG_BUFFER_WHEN_FULL",
        "when the sender falls behind: spool (excess to disk, replayed in order), drop_newest or block (spool)",
    ),
    "block_timeout_seconds": (
        "FLEETLOG_BLOCK_TIMEOUT",
        "longest run.log waits under FLEETLOG_BUFFER_WHEN_FULL=block before dropping, counted (10)",
    ),
    "heartbeat_interval_seconds": ("FLEETLOG_HEARTBEAT_INTERVAL", "seconds between run heartbeats (5)"),
    "telemetry_interval_seconds": ("FLEETLOG_TELEMETRY_INTERVAL", "seconds between sys/ samples; 0 turns off (10)"),
    "artifacts_url": ("FLEETLOG_ARTIFACTS", "where uploaded files go: a directory URL or any fsspec URL (s3://...)"),
    "inline_max_bytes": ("FLEETLOG_INLINE_MAX_BYTES", "images up to this size also travel inline (262144)"),
    "outputs_dir": ("FLEETLOG_OUTPUTS_DIR", "uploaded when a run completes ('./outputs'; empty turns off)"),
    "kafka_security_protocol": ("FLEETLOG_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    "kafka_sasl_mechanism": ("FLEETLOG_KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    "kafka_sasl_username": ("FLEETLOG_KAFKA_SASL_USERNAME", "SASL user"),
    "kafka_sasl_password": ("FLEETLOG_KAFKA_SASL_PASSWORD", "SASL password (never logged)"),
    "kafka_ssl_cafile": ("FLEETLOG_KAFKA_SSL_CAFILE", "CA certificate that signed the brokers' certificates"),
    "rollup_resolutions": ("FLEETLOG_ROLLUP_RESOLUTIONS", "steps per rollup bucket, comma separated (10,...,10000)"),
    "rollup_retained_buckets": ("FLEETLOG_ROLLUP_RETAINED_BUCKETS", "closed buckets kept for late points (2)"),
    "lost_run_timeout_seconds": ("FLEETLOG_LOST_RUN_TIMEOUT", "seconds without heartbeat or data before Lost (120)"),
    "rank_timeout_seconds": ("FLEETLOG_RANK_TIMEOUT", "seconds a step waits for every rank's value (30)"),
    "straggler_factor": ("FLEETLOG_STRAGGLER_FACTOR", "step time over the ranks' median that is slow (1.5)"),
    "straggler_patience": ("FLEETLOG_STRAGGLER_PATIENCE", "slow batches in a row before a straggler alert (3)"),
    "spike_factor": ("FLEETLOG_SPIKE_FACTOR", "a spike is a value above this times the rolling median (3)"),
    "spike_window_points": ("FLEETLOG_SPIKE_WINDOW", "points in the spike detector's rolling median (20)"),
    "spike_metrics": ("FLEETLOG_SPIKE_METRICS", "regex of metric names watched for spikes (loss)"),
    "rank_metrics": (
        "FLEETLOG_RANK_METRICS",
        "regex of metric names aggregated across ranks (default: names with loss, acc, throughput, per_sec or "
        "step_time; `.` for every metric)",
    ),
    "gpu_metrics": ("FLEETLOG_GPU_METRICS", "regex of metric names averaged as GPU utilisation (gpu\\d*[_./]?util)"),
    "fleet_windows": ("FLEETLOG_FLEET_WINDOWS", "fleet window lengths in seconds, comma separated (10,60)"),
    "processor_batch_records": ("FLEETLOG_PROCESSOR_BATCH_RECORDS", "Kafka records per processor batch (64)"),
    "processor_batch_seconds": ("FLEETLOG_PROCESSOR_BATCH_SECONDS", "longest a processor batch waits to fill (0.5)"),
    "processor_state_retention_seconds": (
        "FLEETLOG_PROCESSOR_STATE_RETENTION",
        "seconds a finished run's state is kept for late data (3600)",
    ),
}


def _coerce(name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    try:
        if kind == "int":
            return int(float(raw))
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{ENV_VARS[name][0]}={raw!r} is not a number") from None
    if kind == "Path":
        return Path(raw)
    return raw


def mask_url(url: str) -> str:
    """Hide the password in a URL so it can be logged or printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (unresolvable: False).

    The dashboard and the store's endpoint both refuse to bind beyond loopback without a
    secret; this is the one test of "beyond loopback" they share.
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
