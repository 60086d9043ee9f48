"""Records -> engine -> rows envelopes: dead letters, isolation of failures, and the sink accepting the rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import clickhouse_connect
import numpy as np
import pytest
from clickhouse_connect.driver.client import Client
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine
from fleetlog.processors.core.lifecycle import parse_alert_rules
from fleetlog.processors.emit import concat_columns, rows_messages
from fleetlog.processors.pipeline import Pipeline, Record
from fleetlog.sinks import rows as sink_rows
from processor_helpers import T0, apply

from fleetlog.events import (
    DEAD_LETTER_RUN,
    DictColumn,
    Envelope,
    Source,
    dead_letter_columns,
    decode,
    encode,
    encode_metrics,
)
from fleetlog.store.client import migrate


def pipeline(engine=None) -> Pipeline:
    engine = engine or RunEngine(ProcessorConfig(resolutions=(10, 100)))
    return Pipeline(engine, metrics_topic="t.metrics", events_topic="t.events")


def metric_record(run="r", offset=0, n=100, rank=0, world=1, key=None, values=None) -> Record:
    env = Envelope(kind="metrics", run_id=run, experiment="e", source=Source(host="h", rank=rank, world_size=world))
    values = np.arange(n, dtype=float) if values is None else values
    step = np.arange(n)
    [(_, msg)] = encode_metrics(env, ["loss"], np.zeros(n, np.uint32), step, T0 + step * 10, values)
    return Record("t.metrics", 0, offset, run.encode() if key is None else key, msg)


def event_record(env: Envelope, offset: int) -> Record:
    return Record("t.events", 0, offset, env.key, encode(env))


def test_records_only_the_processors_refuse_are_their_dead_letters_and_the_rest_is_processed():
    bad_rule = Envelope(
        kind="rows",
        run_id="r",
        body={"table": "alert_rules", "columns": {"metric": ["loss"], "above": ["x"], "below": [None]}},
    )
    records = [
        Record("t.metrics", 2, 7, b"k", b"\xffgarbage"),
        metric_record(offset=8, key=b"other"),
        metric_record(offset=9, rank=3, world=2),
        event_record(bad_rule, 10),
        metric_record(offset=11),
    ]
    result = pipeline().handle(records, get={}.get, now=5.0)
    dead = result.dead_letters
    # Undecodable bytes and a key that is not the run's are the sink's dead letters (it reads them too).
    assert result.stats["refused_by_sink"] == 2
    assert [d.offset for d in dead] == [9, 10] and [d.partition for d in dead] == [0, 0]
    assert [d.stage for d in dead] == ["processor"] * 2 and dead[0].payload == records[2].value
    assert [d.received_at for d in dead] == [5.0, 5.0] and [d.key for d in dead] == ["r", "r"]
    reasons = [d.reason for d in dead]
    assert "does not fit world size" in reasons[0] and "finite number" in reasons[1]
    assert [r.run_id for r in result.runs] == ["r"] and result.stats["points"] == 100


def test_a_run_whose_processing_fails_is_dead_lettered_without_stopping_the_others():
    class Flaky(RunEngine):
        def process(self, run_id, *args, **kwargs):
            if run_id == "bad":
                raise RuntimeError("boom")
            return super().process(run_id, *args, **kwargs)

    p = pipeline(Flaky(ProcessorConfig()))
    result = p.handle([metric_record("bad", 0), metric_record("good", 1)], get={}.get)
    assert [r.run_id for r in result.runs] == ["good"]
    [dead] = result.dead_letters
    assert dead.offset == 0 and "RuntimeError: boom" in dead.reason


def test_rows_are_split_under_the_message_limit_and_survive_the_wire():
    cols = {"run_id": ["r"] * 5000, "x": list(range(5000)), "v": [0.5] * 5000}
    messages = list(rows_messages("r", "metric_rollups", cols, max_bytes=20_000))
    assert len(messages) > 1 and all(len(m) <= 20_000 for m in messages)
    back = concat_columns([decode(m).body["columns"] for m in messages])
    assert {k: list(v) for k, v in back.items()} == cols


def test_typed_rows_are_split_under_the_message_limit_and_come_back_as_arrays_and_dictionaries():
    n = 20_000
    parts = [
        {
            "run_id": DictColumn.repeat("r", n // 2),
            "metric": DictColumn.of(["a", "b"] * (n // 4)),
            "x": np.arange(n // 2),
        },
        {"run_id": DictColumn.repeat("r", n // 2), "metric": DictColumn.of(["c"] * (n // 2)), "x": np.arange(n // 2)},
    ]
    cols = concat_columns(parts)
    assert cols["metric"].values == ("a", "b", "c") and cols["x"].dtype == np.int64
    messages = list(rows_messages("r", "metric_rollups", cols, max_bytes=20_000))
    assert len(messages) > 1 and all(len(m) <= 20_000 for m in messages)
    back = concat_columns([decode(m).body["columns"] for m in messages])
    assert isinstance(back["metric"], DictColumn) and back["metric"].tolist() == cols["metric"].tolist()
    assert back["run_id"].values == ("r",) and np.array_equal(back["x"], cols["x"])


def test_columns_that_cannot_be_typed_fall_back_to_lists():
    cols = concat_columns(
        [
            {"end": [None, 2.5], "n": np.array([1, 2], np.int64), "s": ["a", "b"], "p": [b"x", b"y"]},
            {"end": [1.5], "n": np.array([3], np.uint8), "s": np.array(["c"], object), "p": [b"z"]},
        ]
    )
    assert cols["end"] == [None, 2.5, 1.5] and cols["n"] == [1, 2, 3] and cols["p"] == [b"x", b"y", b"z"]
    assert isinstance(cols["s"], DictColumn) and cols["s"].tolist() == ["a", "b", "c"]


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path = tmp_path_factory.getbasetemp() / "chdb-store"  # this process's one chDB path (see tests/unit/conftest.py)
    database = f"p{uuid.uuid4().hex[:10]}"
    clickhouse_connect.get_client(dsn=f"chdb://{path}").command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
    migrate(client)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {database}")


def test_the_sink_inserts_every_derived_table_into_the_real_schema(chdb: Client):
    engine = RunEngine(ProcessorConfig(resolutions=(10, 100), lost_after_seconds=1))
    p, store = pipeline(engine), {}
    values = np.r_[np.ones(150), np.nan, np.ones(49) * 1.01]
    batch = [metric_record(rank=r, world=2, offset=r, n=200, values=values) for r in range(2)]
    batch.append(metric_record("q", offset=2, rank=3, world=2))  # refused by the processors alone
    results = [p.handle(batch, get=store.get, now=100.0)]
    apply(store, results[0].runs[0].output.writes)
    results.append(p.tick([("r", 0)], get=store.get, now=200.0))  # lost: flushes, alerts
    records, offset = [], 0
    for result in results:
        for run in result.runs:
            for table, parts in run.output.rows.items():
                for msg in rows_messages(run.run_id, table, concat_columns(parts), max_bytes=900_000):
                    records.append(sink_rows.Record("t.derived", 0, offset, run.run_id.encode(), msg))
                    offset += 1
        dead = dead_letter_columns(result.dead_letters)
        for msg in rows_messages(DEAD_LETTER_RUN, "dead_letters", dead, max_bytes=900_000):
            records.append(sink_rows.Record("t.dead", 0, offset, DEAD_LETTER_RUN.encode(), msg))
            offset += 1
    builder = sink_rows.TableBuilder()
    builder.add(records)
    tables = builder.tables()
    assert "dead_letters" in tables and tables["dead_letters"].num_rows == 1
    for table, data in tables.items():
        chdb.insert_arrow(table, data)
    count = dict(chdb.query("SELECT rule, count() FROM alerts GROUP BY rule").result_rows)
    assert count == {"nonfinite": 2, "lost": 1}
    status, points, end = chdb.query("SELECT status, points, end_time FROM run_summaries FINAL").result_rows[0]
    assert (status, points, end) == ("Lost", 400, None)
    first_ts = chdb.query("SELECT min(first_ts) FROM metric_rollups FINAL").result_rows[0][0]
    assert first_ts.timestamp() == T0 / 1000
    (rows,) = chdb.query("SELECT sum(count) FROM metric_rollups FINAL WHERE resolution = 100").result_rows[0]
    assert rows == 400
    assert chdb.query("SELECT count() FROM rank_aggregates FINAL WHERE complete = 1").result_rows[0][0] == 200
    assert (
        chdb.query(
            "SELECT sum(points) FROM fleet_window_totals WHERE scope = 'experiment' AND window_seconds = 60"
        ).result_rows[0][0]
        == 400
    )
    dead = chdb.query("SELECT stage, reason, payload FROM dead_letters").result_rows
    assert dead[0][0] == "processor" and "does not fit world size" in dead[0][1]


def test_alert_rules_in_typed_columns_parse_like_lists():
    body = {
        "table": "alert_rules",
        "columns": {"metric": DictColumn.of(["loss", "acc"]), "above": np.array([4, 1]), "below": [None, 0.5]},
    }
    env = decode(encode(Envelope(kind="rows", run_id="r", body=body)))
    assert parse_alert_rules(env) == [("loss", 4.0, None), ("acc", 1.0, 0.5)]


def test_a_model_registration_is_no_run_of_the_processors():
    """Keyed by the model's name (fleetlog.events.models), it must not become a phantom run (later 'lost')."""
    from fleetlog.events.models import model_stream_id

    reg = Envelope(kind="model", run_id=model_stream_id("clf"), source=Source(host="h"), body={"name": "clf"})
    result = pipeline().handle([event_record(reg, 0), metric_record(offset=1)], get={}.get, now=5.0)
    assert [r.run_id for r in result.runs] == ["r"] and result.stats["model_events"] == 1
    assert result.dead_letters == []
