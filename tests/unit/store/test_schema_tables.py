"""The schema's tables as data, read from the migrations: what the read side names instead of guessing."""

from __future__ import annotations

import pytest

from fleetlog.store.schema import TABLES, TTL_TABLES
from fleetlog.store.schema_derived import DERIVED_TABLES
from fleetlog.store.schema_tables import TABLE_SPECS, TIME_COLUMNS, spec


def test_every_table_of_the_schema_is_described():
    assert set(TABLES) | DERIVED_TABLES == set(TABLE_SPECS)


def test_columns_and_engines_come_from_the_ddl():
    runs = spec("runs")
    assert runs.columns[:3] == ("run_id", "project", "experiment") and runs.replacing and runs.final == " FINAL"
    assert "description" in runs.columns  # added by a later migration's ALTER TABLE
    points = spec("metric_points")
    assert points.columns == ("run_id", "metric", "rank", "step", "ts", "value") and points.final == ""
    rollups = spec("metric_rollups")
    assert {"resolution", "bucket", "first_step", "last_step", "sum", "nonfinite", "last"} <= set(rollups.columns)


def test_time_columns_are_columns_of_their_tables():
    for table, column in {**TIME_COLUMNS, **TTL_TABLES}.items():
        assert column in spec(table).columns, (table, column)
        assert spec(table).time_column == TIME_COLUMNS[table]


def test_an_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="metric_points"):
        spec("metric_rollup")
