"""The one store boundary: a clickhouse-connect ``Client`` for chDB or a server.

``FLEETLOG_CLICKHOUSE_URL`` picks the backend: ``chdb:///abs/path`` opens the
embedded engine in this process (only one process may own a path), and
``http(s)://user:pass@host:port/db`` talks to a ClickHouse server, or to the
embedded store's HTTP endpoint served by the process that owns it.  Schema,
migrations and queries are the same text for both.

Errors are classified here and nowhere else (:func:`classify`)::

    StoreError                 retriable=True: overload, timeouts, network -- retry with backoff
    ├── StoreUnavailable       the store cannot be reached at all (retriable)
    └── DataRejected           the rows themselves are refused (bad type, unknown column,
                               too many partitions in one block): retrying cannot help,
                               they go to ``dead_letters``
    StoreError                 retriable=False: anything else (permissions, a missing table,
                               an unknown code) -- the store needs an operator, not new data
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from fleetlog.config import Settings, mask_url
from fleetlog.errors import ConfigError, StoreError, StoreUnavailable
from fleetlog.store.schema import MIGRATIONS, MIGRATIONS_TABLE, TTL_TABLES, SchemaOptions, render, retention_statements

__all__ = [
    "DEFAULT_DATABASE",
    "DataRejected",
    "apply_retention",
    "classify",
    "connect",
    "migrate",
    "open_store",
    "schema_options",
]

log = logging.getLogger("fleetlog.sink")

DEFAULT_DATABASE = "fleetlog"

# Worth retrying: the same statement may succeed once the server catches up.
_TRANSIENT = {
    3,  # UNEXPECTED_END_OF_FILE: a body cut short in transit
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    33,  # CANNOT_READ_ALL_DATA
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY: a replica lost its Keeper session
    252,  # TOO_MANY_PARTS: merges are behind (but see _DATA_MESSAGES)
    279,  # ALL_CONNECTION_TRIES_FAILED
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    373,  # SESSION_IS_LOCKED
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
    1000,  # POCO_EXCEPTION
}
# The rows themselves: the same rows fail the same way on every try.
_DATA = {
    6,  # CANNOT_PARSE_TEXT
    8,  # THERE_IS_NO_COLUMN
    10,  # NOT_FOUND_COLUMN_IN_BLOCK
    15,  # DUPLICATE_COLUMN
    16,  # NO_SUCH_COLUMN_IN_TABLE: a rows event naming a column the table lacks
    20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    43,  # ILLEGAL_TYPE_OF_ARGUMENT
    44,  # ILLEGAL_COLUMN
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
}
_AUTHENTICATION_FAILED = 516  # wrong or missing user/password: no retry can fix it
# Codes shared by an overload and a data problem, told apart by the message.
_DATA_MESSAGES = {252: "partitions for single INSERT block"}


class DataRejected(StoreError):
    """ClickHouse refuses these rows and always will; they belong in ``dead_letters``."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message, retriable=False)
        self.code = code


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
            return clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=database or parts.path.strip("/") or DEFAULT_DATABASE,
                secure=parts.scheme == "https",
                connect_timeout=5,
                send_receive_timeout=120,
                # Stateless requests: a session would serialise concurrent callers and keep server state.
                autogenerate_session_id=False,
            )
    except (OperationalError, DatabaseError) as exc:
        if getattr(exc, "code", None) == _AUTHENTICATION_FAILED:
            raise StoreUnavailable(
                f"ClickHouse at {mask_url(url)} refused the credentials: {exc}. fleetlog's own processes log in to "
                "the embedded store with $FLEETLOG_HOME/credentials/store.json (`fleetlog store credentials --json` "
                "prints them): check FLEETLOG_HOME, FLEETLOG_STORE_*_PASSWORD or the user in FLEETLOG_CLICKHOUSE_URL."
            ) from None
        raise StoreUnavailable(
            f"cannot reach ClickHouse at {mask_url(url)}: {exc}. "
            "Start the local stack with `fleetlog up`, or set FLEETLOG_CLICKHOUSE_URL."
        ) from None
    raise ConfigError(f"FLEETLOG_CLICKHOUSE_URL must be chdb:///path or http(s)://..., got {mask_url(url)!r}")


def open_store(url: str, *, database: str | None = None, options: SchemaOptions | None = None) -> Client:
    """Connect, create the database if missing, migrate and apply retention: what a sink does on start."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        name = database or parts.path.strip("/") or DEFAULT_DATABASE
        bootstrap = connect(url, database="default")
        try:
            if not bootstrap.command("EXISTS DATABASE {db:Identifier}", parameters={"db": name}):
                bootstrap.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters={"db": name})
        except DatabaseError as exc:
            raise classify(exc) from exc
        finally:
            bootstrap.close()
    client = connect(url, database=database)
    try:
        migrate(client, options)
        apply_retention(client, options)
    except (OperationalError, DatabaseError) as exc:
        raise classify(exc) from exc
    return client


def migrate(client: Client, options: SchemaOptions | None = None) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return their versions.

    A store whose tables an administrator created (a cluster, from deploy/clickhouse) has
    every version recorded already, so a writer without DDL rights passes straight through.
    """
    if not client.command("EXISTS TABLE schema_migrations"):
        client.command(render(MIGRATIONS_TABLE))
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(render(statement, options=options))
        client.insert("schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
        log.info("applied schema migration %d: %s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def apply_retention(client: Client, options: SchemaOptions | None = None) -> list[str]:
    """Bring the raw tables' TTL to ``options`` (``FLEETLOG_*_TTL_DAYS``); return the ALTERs run.

    Changing a TTL makes ClickHouse re-evaluate existing parts in the background.
    """
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN {t:Array(String)}",
        parameters={"t": list(TTL_TABLES)},
    ).result_rows
    statements = retention_statements(dict(rows), options or SchemaOptions())
    for statement in statements:
        client.command(statement)
        log.info("retention: %s", statement)
    return statements


def schema_options(settings: Settings) -> SchemaOptions:
    """The schema options a ``Settings`` object asks for (its defaults are the store config's)."""
    store = settings.store
    return SchemaOptions(
        raw_ttl_days=store.raw_ttl_days, logs_ttl_days=store.logs_ttl_days, raw_partition=store.raw_partition
    )


def classify(exc: BaseException) -> StoreError:
    """Turn a client exception into the ``StoreError`` that says what to do about it.

    Transport failures and overload codes are retriable; errors about the rows
    themselves are ``DataRejected`` (dead letters); anything else is a non-retriable
    ``StoreError`` that the sink waits out rather than drop data over.
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OperationalError):
        return StoreUnavailable(str(exc))
    message = str(exc)
    code = getattr(exc, "code", None)
    if code is None and "Code: " in message:
        digits = message.split("Code: ", 1)[1].split(".", 1)[0]
        code = int(digits) if digits.isdigit() else None
    if code is None:
        return StoreError(message, retriable=isinstance(exc, (ConnectionError, TimeoutError)))
    if code in _DATA or _DATA_MESSAGES.get(code, "\0") in message:
        return DataRejected(message, code=code)
    return StoreError(message, retriable=code in _TRANSIENT)
