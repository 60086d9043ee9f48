"""Settings shared by every stage: one ``FLEETLOG_*`` prefix, one precedence rule.

Precedence is defaults < environment < explicit arguments, and it is applied here
and nowhere else.  The object is frozen and keyword-only so that a stage can hand
it to another thread without anyone mutating it underneath.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ENV_VARS", "Settings", "mask_url"]


def _default_home() -> Path:
    return Path.home() / ".fleetlog"


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
    http_password: str = ""
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
    sink_batch_seconds: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if not self.clickhouse_url:
            object.__setattr__(self, "clickhouse_url", f"chdb://{self.home / 'store'}")
        if self.mode not in ("online", "offline"):
            raise ValueError(f"FLEETLOG_MODE must be 'online' or 'offline', not {self.mode!r}")
        if self.flush_interval_seconds <= 0 or self.sink_batch_seconds <= 0:
            raise ValueError("flush_interval_seconds and sink_batch_seconds must be positive")

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
    "http_password": ("FLEETLOG_HTTP_PASSWORD", "password the endpoint requires (required off loopback)"),
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
    "sink_batch_seconds": ("FLEETLOG_SINK_BATCH_SECONDS", "longest a row waits before insert (1.0)"),
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
