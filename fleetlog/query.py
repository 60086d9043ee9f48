"""Reading back: SQL against the store, returned as pandas DataFrames.

Every read goes through clickhouse-connect's HTTP client, so the same code reads
the embedded store (through the endpoint its owning process serves) and a
ClickHouse server.  Values are bound server-side (``{name:Type}`` placeholders);
nothing a user passes is ever pasted into SQL text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from fleetlog.config import Settings

__all__ = ["client", "reader_url", "sql"]


def reader_url(settings: Settings) -> str:
    """Where readers connect: the embedded store's endpoint, or the server itself."""
    if settings.is_embedded_store:
        auth = f"default:{settings.http_password}@" if settings.http_password else ""
        return f"http://{auth}{settings.http_host}:{settings.http_port}"
    return settings.clickhouse_url


@functools.lru_cache(maxsize=8)
def _client(url: str) -> Client:
    from fleetlog.sinks.store import connect

    return connect(url)


def client(settings: Settings | None = None) -> Client:
    """A cached clickhouse-connect client for the configured store."""
    return _client(reader_url(settings or Settings.from_env()))


def sql(
    query: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Run a query and return a DataFrame; bind values with ``{name:Type}`` placeholders.

    ``sql("SELECT * FROM runs FINAL WHERE experiment = {e:String}", {"e": "mnist"})``
    """
    return client(settings).query_df(query, parameters=dict(parameters or {}))
