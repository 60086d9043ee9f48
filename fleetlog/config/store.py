"""The store's settings (see :mod:`fleetlog.config.stages` for the conventions)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetlog.config._declare import StageConfig, setting

__all__ = ["StoreConfig"]


@dataclass(frozen=True, kw_only=True, repr=False)
class StoreConfig(StageConfig):
    """The store: where ClickHouse is, the embedded store's endpoint, its limits and its schema options."""

    url: str = setting(
        "",
        env="FLEETLOG_CLICKHOUSE_URL",
        old_env="FLEETLOG_CLICKHOUSE",
        shown_default="chdb://$FLEETLOG_HOME/store",
        doc="chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db",
    )
    http_host: str = setting(
        "127.0.0.1", env="FLEETLOG_HTTP_HOST", doc="address of the embedded store's ClickHouse HTTP endpoint"
    )
    http_port: int = setting(8123, env="FLEETLOG_HTTP_PORT", doc="port of that endpoint (ClickHouse's own)")
    writer_password: str = setting(
        "",
        env="FLEETLOG_STORE_WRITER_PASSWORD",
        secret=True,
        shown_default="generated",
        doc="the embedded store's writer password (default: generated into $FLEETLOG_HOME/credentials/store.json)",
    )
    reader_password: str = setting(
        "",
        env="FLEETLOG_STORE_READER_PASSWORD",
        secret=True,
        shown_default="generated",
        doc="the embedded store's read-only reader password (default: generated, as the writer's)",
    )
    max_query_seconds: float = setting(
        60.0,
        env="FLEETLOG_STORE_MAX_QUERY_SECONDS",
        unit="seconds",
        positive=True,
        doc="the endpoint stops any query after this long",
    )
    max_query_memory_bytes: int = setting(
        4 << 30,
        env="FLEETLOG_STORE_MAX_QUERY_MEMORY_BYTES",
        unit="bytes",
        positive=True,
        doc="memory one query through the endpoint may use",
    )
    raw_ttl_days: int = setting(
        90, env="FLEETLOG_RAW_TTL_DAYS", unit="days", doc="days raw points are kept; 0 keeps them forever"
    )
    logs_ttl_days: int = setting(
        90, env="FLEETLOG_LOGS_TTL_DAYS", unit="days", doc="days captured log lines are kept; 0 keeps them forever"
    )
    raw_partition: str = setting(
        "month",
        env="FLEETLOG_RAW_PARTITION",
        choices=("month", "week", "day", "none"),
        doc="how metric_points is partitioned when created",
    )

    @property
    def is_embedded(self) -> bool:
        return self.url.startswith("chdb://")

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"
