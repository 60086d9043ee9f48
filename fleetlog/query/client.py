"""The reader's connection: one cached clickhouse-connect client per store, and its failures.

Every read goes through clickhouse-connect's HTTP client, so the same code reads the
embedded store (through the endpoint its owning process serves, as the read-only
``reader``) and a ClickHouse server.  A connection failure drops the cached client
(the next read reconnects) and becomes :class:`StoreUnavailable` saying how to start
the store.  Which of the schema's tables a store has is read from ``system.tables``
and cached for a few seconds, so a table created while the dashboard runs is seen.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from fleetlog.config import Settings, mask_url
from fleetlog.credentials import store_url
from fleetlog.errors import StoreUnavailable

__all__ = ["StoreUnavailable", "client", "df", "reader_url", "reading", "rows", "tables_present"]

_TABLES_MAX_AGE_SECONDS = 5.0


def reader_url(settings: Settings) -> str:
    """Where readers connect: the embedded store's endpoint as its read-only reader, or the server itself.

    The URL carries the reader's password: pass it through ``mask_url`` before showing it.
    """
    return store_url(settings, "reader")


@functools.lru_cache(maxsize=8)
def _client(url: str) -> Client:
    from fleetlog.store.client import connect

    reader = connect(url)
    # Readers keep no server-side state; without a session id one client serves many threads at once
    # (the dashboard's), where a shared session would refuse concurrent queries.
    reader.params.pop("session_id", None)
    return reader


def client(settings: Settings | None = None) -> Client:
    """A cached clickhouse-connect client for the configured store."""
    return _client(reader_url(settings or Settings.from_env()))


@contextlib.contextmanager
def reading(settings: Settings) -> Iterator[Client]:
    """The client, with a lost connection turned into ``StoreUnavailable`` (and the cached client dropped)."""
    try:
        yield client(settings)
    except OperationalError as exc:
        _client.cache_clear()
        raise StoreUnavailable(
            f"cannot reach ClickHouse at {mask_url(reader_url(settings))}: {exc}. "
            "Start the local stack with `fleetlog up`, or set FLEETLOG_CLICKHOUSE_URL."
        ) from None


def df(settings: Settings | None, query: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A query's result as a DataFrame, its columns named even when it has no rows."""
    settings = settings or Settings.from_env()
    bound = dict(parameters or {})
    with reading(settings) as reader:
        frame = reader.query_df(query, parameters=bound)
        if frame.empty and not len(frame.columns):
            # An empty result can come back without its header; ask for the column names.
            names = reader.query(f"DESCRIBE ({query})", parameters=bound).result_columns[0]
            frame = pd.DataFrame(columns=list(names))
        return frame


def rows(settings: Settings | None, query: str, parameters: Mapping[str, Any] | None = None) -> list[Any]:
    """A small result as Python rows: no DataFrame built for what is folded into one."""
    settings = settings or Settings.from_env()
    with reading(settings) as reader:
        return reader.query(query, parameters=dict(parameters or {})).result_rows


_present: dict[str, tuple[float, frozenset[str]]] = {}
_present_lock = threading.Lock()


def tables_present(settings: Settings | None) -> frozenset[str]:
    """The tables the store has now (``system.tables``), read at most every few seconds per store."""
    settings = settings or Settings.from_env()
    key, now = reader_url(settings), time.monotonic()
    with _present_lock:
        hit = _present.get(key)
    if hit is not None and now - hit[0] < _TABLES_MAX_AGE_SECONDS:
        return hit[1]
    names = frozenset(r[0] for r in rows(settings, "SELECT name FROM system.tables WHERE database = currentDatabase()"))
    with _present_lock:
        _present[key] = (now, names)
    return names
