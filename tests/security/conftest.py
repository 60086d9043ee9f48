"""A real store for the attacks on the dashboard and the CLI: schema, endpoint, reader login.

Like the unit tests' ``query_store``: in-process chDB on the one store path this test
process uses (the session's ``chdb-store``), a database of its own with the real schema,
served by :class:`HttpEndpoint`; readers connect as the endpoint's read-only reader.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import clickhouse_connect
import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from fleetlog.config import Settings
from fleetlog.store.client import migrate
from fleetlog.store.endpoint import HttpEndpoint

RUN_COLUMNS = [
    "run_id",
    "project",
    "experiment",
    "name",
    "parent_run_id",
    "status",
    "start_time",
    "end_time",
    "error_type",
    "error_message",
    "error_traceback",
    "host",
    "pid",
    "rank",
    "world_size",
    "updated_at",
]


@dataclass(frozen=True)
class SecuredStore:
    settings: Settings  # readers' settings: the endpoint's URL with the reader's credentials
    owner: Client  # in-process chDB on the same database, to plant hostile data
    database: str

    def add_run(self, run_id: str, name: str, *, experiment: str = "exp", error: str = "") -> None:
        now = pd.Timestamp(time.time(), unit="s", tz="UTC")
        row = [run_id, "default", experiment, name, "", "Failed" if error else "Completed", now, now]
        row += ["ValueError" if error else "", error, "", "host", 1, 0, 1, now]
        self.owner.insert("runs", [row], column_names=RUN_COLUMNS)


@pytest.fixture(scope="module")
def secured_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStore]:
    path = tmp_path_factory.getbasetemp() / "chdb-store"
    bootstrap = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    database = f"sec{uuid.uuid4().hex[:10]}"
    bootstrap.command(f"CREATE DATABASE {database}")
    owner = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
    migrate(owner)
    with HttpEndpoint(owner, port=0) as endpoint:
        host, port = endpoint.address
        reader = endpoint.credentials.reader
        url = f"http://{reader.name}:{reader.password}@{host}:{port}/{database}"
        settings = Settings.build(home=tmp_path_factory.mktemp("home"), clickhouse_url=url)
        yield SecuredStore(settings=settings, owner=owner, database=database)
    bootstrap.command(f"DROP DATABASE IF EXISTS {database}")
