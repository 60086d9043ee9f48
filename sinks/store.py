"""The one store boundary: a clickhouse-connect ``Client`` for chDB or a server.

``FLEETLOG_CLICKHOUSE`` picks the backend: ``chdb:///abs/path`` opens the
embedded engine in this process (only one process may own a path), and
``http(s)://user:pass@host:port/db`` talks to a ClickHouse server, or to the
embedded store's HTTP endpoint served by the process that owns it.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from fleetlog.sinks.schema import MIGRATIONS, MIGRATIONS_TABLE, render

from fleetlog.config import mask_url
from fleetlog.errors import ConfigError, StoreError, StoreUnavailable

__all__ = ["DEFAULT_DATABASE", "classify", "connect", "migrate", "open_store"]

log = logging.getLogger("fleetlog.sink")

DEFAULT_DATABASE = "fleetlog"

# ClickHouse error codes worth retrying: timeouts, too many parts/queries, memory, network.
_RETRIABLE_CODES = {159, 164, 202, 209, 210, 241, 252, 285, 319, 394, 425, 999, 1000}


def connect(url: str, *, database: str | None = None) -> Client:
    """A client for the URL, without touching the schema (readers use this)."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "chdb":
            if not parts.path.startswith("/"):
                raise ConfigError(f"chdb URL needs an absolute path, e.g. chdb:///var/lib/fleetlog, got {url!r}")
            bootstrap = clickhouse_connect.get_client(dsn=f"chdb://{parts.path}")
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {database or DEFAULT_DATABASE}")
            return clickhouse_connect.get_client(dsn=f"chdb://{parts.path}", database=database or DEFAULT_DATABASE)
        if parts.scheme in ("http", "https"):
            db = database or parts.path.strip("/") or DEFAULT_DATABASE
            return clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=db,
                secure=parts.scheme == "https",
                connect_timeout=5,
                send_receive_timeout=120,
            )
    except (OperationalError, DatabaseError) as exc:
        raise StoreUnavailable(
            f"cannot reach ClickHouse at {mask_url(url)}: {exc}. "
            "Start the local stack with `fleetlog up`, or set FLEETLOG_CLICKHOUSE."
        ) from None
    raise ConfigError(f"FLEETLOG_CLICKHOUSE must be chdb:///path or http(s)://..., got {mask_url(url)!r}")


def open_store(url: str, *, database: str | None = None) -> Client:
    """Connect and bring the schema up to date: what a sink does on start."""
    client = connect(url, database=database)
    if urlsplit(url).scheme != "chdb":
        client.command(f"CREATE DATABASE IF NOT EXISTS {client.database}")
    migrate(client)
    return client


def migrate(client: Client) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return their versions."""
    client.command(MIGRATIONS_TABLE)
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(render(statement))
        client.insert("schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
        log.info("applied schema migration %d: %s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def classify(exc: BaseException) -> StoreError:
    """Turn a client exception into ``StoreError`` with the right ``retriable`` flag.

    Transport failures and overload codes are retriable; anything about the data
    itself (bad type, unknown column) is not, and goes to the dead-letter table.
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OperationalError):
        return StoreUnavailable(str(exc))
    code = getattr(exc, "code", None)
    if code is None and "Code: " in str(exc):
        digits = str(exc).split("Code: ", 1)[1].split(".", 1)[0]
        code = int(digits) if digits.isdigit() else None
    retriable = code in _RETRIABLE_CODES if code is not None else isinstance(exc, (ConnectionError, TimeoutError))
    return StoreError(str(exc), retriable=retriable)
