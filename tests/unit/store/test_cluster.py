"""The cluster schema is generated from the single-node migrations, and what is committed is that output."""

from __future__ import annotations

import re
from pathlib import Path

import chdb
import pytest

from fleetlog.store.cluster import GLOBAL_TABLES, cluster_sql, cluster_statements
from fleetlog.store.schema import DERIVED_TABLES, TABLES, SchemaOptions

DEPLOY = Path(__file__).parents[3] / "deploy" / "clickhouse"


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory):
    conn = chdb.connect(str(tmp_path_factory.getbasetemp() / "chdb-store"))
    yield lambda sql: conn.query("EXPLAIN AST " + sql, "TSV")
    conn.close()


def test_committed_cluster_sql_is_the_generated_one() -> None:
    assert (DEPLOY / "cluster.sql").read_text() == cluster_sql(), (
        "deploy/clickhouse/cluster.sql is stale: run `python -m fleetlog.store.cluster > deploy/clickhouse/cluster.sql`"
    )


def test_every_table_is_replicated_and_sharded_by_run() -> None:
    sql = cluster_sql("prod", options=SchemaOptions(raw_ttl_days=30))
    for table in (set(TABLES) | DERIVED_TABLES) - GLOBAL_TABLES:
        assert f"CREATE TABLE IF NOT EXISTS fleetlog.{table}_local ON CLUSTER 'prod'" in sql, table
        local = re.search(rf"{table}_local ON CLUSTER 'prod'\n\((.*?)\)\nENGINE = (\w+)", sql, re.S)
        assert local is not None and local.group(2).startswith("Replicated"), table
        assert f"ENGINE = Distributed('prod', 'fleetlog', '{table}_local', cityHash64(" in sql, table
    assert "ENGINE = Distributed('prod', 'fleetlog', 'metric_points_local', cityHash64(run_id))" in sql
    assert "'/clickhouse/tables/all/{database}/{table}'" in sql  # intents: every server holds them whole
    assert (
        "ALTER TABLE fleetlog.metric_points_local ON CLUSTER 'prod' MODIFY TTL toDateTime(ts) + toIntervalDay(30)"
        in sql
    )
    assert "INSERT INTO fleetlog.schema_migrations" in sql


def test_every_statement_parses(parser) -> None:
    users = re.sub(r"--[^\n]*", "", (DEPLOY / "users.sql").read_text())
    statements = cluster_statements() + [s for s in users.split(";") if s.strip()]
    for statement in statements:
        parser(statement)
    assert len(statements) > 40
