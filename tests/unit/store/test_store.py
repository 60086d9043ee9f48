"""The store boundary: error classification, migrations and retention on both backends."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from fleetlog.errors import StoreError, StoreUnavailable
from fleetlog.store.client import DataRejected, apply_retention, classify, migrate
from fleetlog.store.schema import MIGRATIONS, SchemaOptions

TOO_MANY_PARTS = "Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower"
TOO_MANY_PARTITIONS = "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100)."


@pytest.mark.parametrize(
    ("exc", "kind", "retriable"),
    [
        (OperationalError("connection refused"), StoreUnavailable, True),
        (ConnectionResetError("reset"), StoreError, True),
        (DatabaseError(TOO_MANY_PARTS, code=252), StoreError, True),
        (DatabaseError("Code: 241. DB::Exception: Memory limit (total) exceeded"), StoreError, True),
        (DatabaseError("Code: 159. Timeout exceeded", code=159), StoreError, True),
        (DatabaseError(TOO_MANY_PARTITIONS, code=252), DataRejected, False),
        (DatabaseError("Code: 6. Cannot parse string 'x' as UInt32", code=6), DataRejected, False),
        (DatabaseError("Code: 16. No such column nosuch in table", code=16), DataRejected, False),
        (DatabaseError("Code: 53. Type mismatch", code=53), DataRejected, False),
        (DatabaseError("Code: 516. Authentication failed", code=516), StoreError, False),
        (DatabaseError("Code: 60. Unknown table fleetlog.x", code=60), StoreError, False),
        (DatabaseError("Code: 497. Not enough privileges"), StoreError, False),
        (ValueError("something else"), StoreError, False),
    ],
)
def test_classify(exc: BaseException, kind: type, retriable: bool) -> None:
    error = classify(exc)
    assert type(error) is kind and error.retriable is retriable
    assert classify(error) is error


def test_classify_real_engine_errors(store) -> None:
    n = 200
    months = (1_000_000_000_000 + np.arange(n, dtype=np.int64) * 31 * 86_400_000).view("datetime64[ms]")
    spread = pa.table({"run_id": ["r"] * n, "step": np.arange(n), "ts": pa.array(months), "value": np.ones(n)})
    bad_type = pa.table({"run_id": ["r"], "rank": ["not a number"]})
    unknown = pa.table({"run_id": ["r"], "nosuch": [1]})
    for table in (spread, bad_type, unknown):
        with pytest.raises(Exception) as info:
            store.client.insert_arrow("metric_points", table)
        assert isinstance(classify(info.value), DataRejected), info.value
    assert store.owner.query("SELECT count() FROM metric_points").result_rows == [(0,)]


def test_migrations_are_recorded_once(store) -> None:
    recorded = store.client.query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows
    assert [v for (v,) in recorded] == [m.version for m in MIGRATIONS]
    assert migrate(store.client) == []
    assert migrate(store.owner) == []  # the other backend sees the same store


def test_retention_follows_the_options(store) -> None:
    def ttl(table: str) -> str:
        engine = store.owner.query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows[0][0]
        return engine.partition(" TTL ")[2].partition(" SETTINGS ")[0]

    assert ttl("metric_points") == "toDateTime(ts) + toIntervalDay(90)"
    assert apply_retention(store.client) == []  # already there: nothing to do
    assert apply_retention(store.client, SchemaOptions(raw_ttl_days=30, logs_ttl_days=0)) == [
        "ALTER TABLE metric_points MODIFY TTL toDateTime(ts) + toIntervalDay(30)",
        "ALTER TABLE run_logs REMOVE TTL",
    ]
    assert ttl("metric_points") == "toDateTime(ts) + toIntervalDay(30)" and ttl("run_logs") == ""
    assert "ttl_only_drop_parts = 1" in store.owner.command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'metric_points'"
    )


def test_a_reused_deduplication_token_adds_nothing(store) -> None:
    now = np.datetime64(int(time.time() * 1000), "ms")
    rows = pa.table({"run_id": ["r"] * 3, "metric": ["m"] * 3, "step": [1, 2, 3], "ts": [now] * 3, "value": [1.0] * 3})
    for _ in range(3):
        store.client.insert_arrow("metric_points", rows, settings={"insert_deduplication_token": "t:0:5-9"})
    store.client.insert_arrow("metric_points", rows, settings={"insert_deduplication_token": "t:0:10-12"})
    assert store.owner.query("SELECT count() FROM metric_points").result_rows == [(6,)]
