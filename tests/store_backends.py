"""Fixtures for the store's and the sinks' unit tests: a fresh, migrated database on either store backend.

chDB allows one store path per process, so every module here shares the session's
``chdb-store`` (as test_endpoint.py does) and each test gets a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from fleetlog.credentials import StoreUser
from fleetlog.store.client import open_store
from fleetlog.store.endpoint import HttpEndpoint


@dataclass(frozen=True)
class Store:
    backend: str  # "chdb" (in-process) or "http" (through the endpoint, as to a server)
    url: str
    client: Client  # the sink's client for ``url``
    owner: Client  # in-process chDB client on the same database, to look behind the backend's back


@pytest.fixture(scope="module")
def served_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, StoreUser]]:
    """The session's store path, served; with the endpoint's writer, as whom a sink logs in."""
    path = tmp_path_factory.getbasetemp() / "chdb-store"
    owner = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    with HttpEndpoint(owner, port=0) as endpoint:
        yield str(path), endpoint.address[1], endpoint.credentials.writer


@pytest.fixture(params=["chdb", "http"])
def store(request: pytest.FixtureRequest, served_path: tuple[str, int, StoreUser]) -> Iterator[Store]:
    path, port, writer = served_path
    database = f"s{uuid.uuid4().hex[:10]}"
    http = f"http://{writer.name}:{writer.password}@127.0.0.1:{port}/{database}"
    url = f"chdb://{path}" if request.param == "chdb" else http
    client = open_store(url, database=database)
    owner = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
    yield Store(request.param, url, client, owner)
    owner.command(f"DROP DATABASE IF EXISTS {database}")
