"""One configuration object per stage; each field declares its ``FLEETLOG_*`` variable, unit and doc.

``docs/configuration.md`` is generated from these declarations (``python -m fleetlog.config
--markdown``), so the doc line here is the one users read. Durations, sizes and counts carry
their unit in the field's and the variable's name; conversion to a library's own unit (aiokafka's
``*_ms``) happens in :meth:`KafkaConfig.client_kwargs` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetlog.config._declare import StageConfig, setting

__all__ = [
    "BUFFER_WHEN_FULL",
    "KafkaConfig",
    "SdkConfig",
    "SinkConfig",
    "TopicConfig",
    "UiConfig",
]

# What the SDK does when its in-memory buffer is full (Vector's when_full): "spool" moves the excess to the
# on-disk spool and replays it in order; "drop_newest" drops and counts; "block" waits block_timeout_seconds.
BUFFER_WHEN_FULL = ("spool", "drop_newest", "block")


@dataclass(frozen=True, kw_only=True, repr=False)
class TopicConfig(StageConfig):
    """Kafka topic naming, shared by producer, processor and sink so they can never disagree."""

    prefix: str = setting("fleetlog", env="FLEETLOG_TOPIC_PREFIX", doc="prefix of every Kafka topic")
    partitions: int = setting(4, env="FLEETLOG_TOPIC_PARTITIONS", doc="partitions of topics fleetlog creates")
    replication: int = setting(1, env="FLEETLOG_TOPIC_REPLICATION", doc="replication factor of those topics")


@dataclass(frozen=True, kw_only=True, repr=False)
class KafkaConfig(StageConfig):
    """How every stage reaches the brokers."""

    bootstrap: str = setting(
        "127.0.0.1:9092",
        env="FLEETLOG_KAFKA_BOOTSTRAP",
        old_env="FLEETLOG_KAFKA",
        doc="Kafka bootstrap servers, comma separated",
    )
    security_protocol: str = setting(
        "PLAINTEXT",
        env="FLEETLOG_KAFKA_SECURITY_PROTOCOL",
        doc="how clients talk to the brokers",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    sasl_mechanism: str = setting(
        "",
        env="FLEETLOG_KAFKA_SASL_MECHANISM",
        doc="SASL mechanism (empty: SCRAM-SHA-512)",
        choices=("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    )
    sasl_username: str = setting("", env="FLEETLOG_KAFKA_SASL_USERNAME", doc="SASL user")
    sasl_password: str = setting(
        "", env="FLEETLOG_KAFKA_SASL_PASSWORD", doc="SASL password (never logged)", secret=True
    )
    ssl_cafile: str = setting("", env="FLEETLOG_KAFKA_SSL_CAFILE", doc="CA certificate that signed the brokers' ones")
    max_message_bytes: int = setting(
        900_000,
        env="FLEETLOG_MAX_MESSAGE_BYTES",
        unit="bytes",
        positive=True,
        doc="largest Kafka message fleetlog produces (below the brokers' message.max.bytes)",
    )
    request_timeout_seconds: float = setting(
        10.0,
        env="FLEETLOG_KAFKA_REQUEST_TIMEOUT_SECONDS",
        unit="seconds",
        positive=True,
        doc="longest a Kafka request (metadata, produce, admin) waits for the brokers",
    )

    def security_kwargs(self) -> dict[str, Any]:
        """aiokafka keyword arguments for TLS and SASL (nothing for the plaintext default)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if "SSL" in self.security_protocol:
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile or None)
        if "SASL" in self.security_protocol:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism or "SCRAM-SHA-512",
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kwargs

    def client_kwargs(self, *, request_timeout_seconds: float | None = None) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client: the one place seconds become ``*_ms``."""
        seconds = self.request_timeout_seconds if request_timeout_seconds is None else request_timeout_seconds
        return {
            "bootstrap_servers": self.bootstrap,
            "request_timeout_ms": int(seconds * 1000),
            **self.security_kwargs(),
        }


@dataclass(frozen=True, kw_only=True, repr=False)
class SdkConfig(StageConfig):
    """The training-side SDK (``Run.log``): buffering, sending, spooling, uploads."""

    mode: str = setting(
        "online",
        env="FLEETLOG_MODE",
        choices=("online", "offline"),
        doc="online ships to Kafka; offline spools to disk, to be sent later with `fleetlog sync`",
    )
    flush_interval_seconds: float = setting(
        0.2,
        env="FLEETLOG_FLUSH_INTERVAL_SECONDS",
        old_env="FLEETLOG_FLUSH_INTERVAL",
        unit="seconds",
        positive=True,
        doc="time between SDK sends",
    )
    max_buffer_points: int = setting(
        1_000_000, env="FLEETLOG_MAX_BUFFER_POINTS", unit="points", doc="points the SDK holds in memory"
    )
    spool_max_bytes: int = setting(
        1 << 30, env="FLEETLOG_SPOOL_MAX_BYTES", unit="bytes", doc="disk the SDK may spool to while Kafka is away"
    )
    buffer_when_full: str = setting(
        "spool",
        env="FLEETLOG_BUFFER_WHEN_FULL",
        choices=BUFFER_WHEN_FULL,
        doc="when the sender falls behind: spool (excess to disk, replayed in order), drop_newest or block",
    )
    block_timeout_seconds: float = setting(
        10.0,
        env="FLEETLOG_BLOCK_TIMEOUT_SECONDS",
        old_env="FLEETLOG_BLOCK_TIMEOUT",
        unit="seconds",
        positive=True,
        doc="longest run.log waits under FLEETLOG_BUFFER_WHEN_FULL=block before dropping, counted",
    )
    heartbeat_interval_seconds: float = setting(
        5.0,
        env="FLEETLOG_HEARTBEAT_INTERVAL_SECONDS",
        old_env="FLEETLOG_HEARTBEAT_INTERVAL",
        unit="seconds",
        doc="time between run heartbeats",
    )
    telemetry_interval_seconds: float = setting(
        10.0,
        env="FLEETLOG_TELEMETRY_INTERVAL_SECONDS",
        old_env="FLEETLOG_TELEMETRY_INTERVAL",
        unit="seconds",
        doc="time between sys/ samples; 0 turns them off",
    )
    artifacts_url: str = setting(
        "",
        env="FLEETLOG_ARTIFACTS_URL",
        old_env="FLEETLOG_ARTIFACTS",
        shown_default="$FLEETLOG_HOME/artifacts",
        doc="where uploaded files go: a directory URL or any fsspec URL (s3://...)",
    )
    inline_max_bytes: int = setting(
        256 << 10, env="FLEETLOG_INLINE_MAX_BYTES", unit="bytes", doc="images up to this size also travel inline"
    )
    outputs_dir: str = setting(
        "./outputs", env="FLEETLOG_OUTPUTS_DIR", doc="folder uploaded when a run completes (empty turns it off)"
    )


@dataclass(frozen=True, kw_only=True, repr=False)
class SinkConfig(StageConfig):
    """The sink: Kafka to ClickHouse in batches."""

    batch_rows: int = setting(
        200_000, env="FLEETLOG_SINK_BATCH_ROWS", unit="rows", positive=True, doc="rows per ClickHouse insert, at most"
    )
    batch_seconds: float = setting(
        0.5,
        env="FLEETLOG_SINK_BATCH_SECONDS",
        unit="seconds",
        positive=True,
        doc="longest a row waits before its insert",
    )
    derived_batch_seconds: float = setting(
        2.0,
        env="FLEETLOG_SINK_DERIVED_BATCH_SECONDS",
        unit="seconds",
        positive=True,
        doc="longest a processor's derived row (rollups, summaries...) waits before its insert",
    )
    batch_bytes: int = setting(
        32 << 20,
        env="FLEETLOG_SINK_BATCH_BYTES",
        unit="bytes",
        positive=True,
        doc="Kafka bytes per ClickHouse insert, at most",
    )
    instance_id: str = setting(
        "",
        env="FLEETLOG_SINK_INSTANCE_ID",
        doc="stable name of this sink in its group: a restart takes its partitions back at once (empty: dynamic)",
    )


@dataclass(frozen=True, kw_only=True, repr=False)
class UiConfig(StageConfig):
    """The dashboard (``fleetlog ui``)."""

    host: str = setting("127.0.0.1", env="FLEETLOG_UI_HOST", doc="address the dashboard binds")
    port: int = setting(8765, env="FLEETLOG_UI_PORT", doc="port of the dashboard")
    token: str = setting(
        "", env="FLEETLOG_UI_TOKEN", secret=True, doc="token the dashboard requires (required off loopback)"
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
