"""No record stops the sink: whatever decoding or converting one raises, it is one dead letter.

The through-Kafka version (a real sink process staying alive) is tests/security/test_pipeline_poison.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from fleetlog.sinks.base import Batch
from fleetlog.sinks.clickhouse import ClickHouseSink
from fleetlog.sinks.rows import Record, TableBuilder
from poison import deep_record, forged_alert, forged_rollup, huge_declared_length

from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode, encode_metrics, limits

SDK_TOPICS = ("t.metrics", "t.events")


def points(offset: int, run: str = "good", n: int = 10) -> Record:
    env = Envelope(kind="metrics", run_id=run, source=Source(host="h"), sent_at=time.time())
    steps = np.arange(offset * 100, offset * 100 + n)
    ts = int(time.time() * 1000) + steps
    [(_, message)] = list(encode_metrics(env, ["loss"], np.zeros(n, np.uint32), steps, ts, np.full(n, 0.5)))
    return Record("t.metrics", 0, offset, run.encode(), message)


def event(value: bytes, offset: int, topic: str = "t.events", key: bytes = b"bad") -> Record:
    return Record(topic, 0, offset, key, value)


def dead_letters(builder: TableBuilder) -> dict[int, str]:
    table = builder.tables()["dead_letters"]
    return dict(zip(table.column("offset").to_pylist(), table.column("reason").to_pylist(), strict=True))


def test_poison_records_are_one_dead_letter_each_and_the_points_around_them_land() -> None:
    alert_rule = Envelope(
        kind="rows",
        run_id="good",
        sent_at=1.0,
        body={"table": "alert_rules", "columns": {"run_id": ["good"], "metric": ["loss"], "above": [2.0]}},
    )
    batch = [
        points(0),
        event(deep_record("bad"), 1),
        event(huge_declared_length("bad"), 2),
        event(forged_rollup("bad"), 3),
        event(forged_alert("bad"), 4, topic="t.metrics"),
        event(b"", 5),  # a tombstone: the worker reads a null value as empty bytes
        event(encode(alert_rule), 6, key=b"good"),  # the one table an SDK client writes rows for
        points(7),
    ]
    builder = TableBuilder(sdk_topics=SDK_TOPICS)
    builder.add(batch)
    reasons = dead_letters(builder)
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "more than 64 levels deep" in reasons[1]
    assert "exceeds max_map_len" in reasons[2]
    assert "'metric_rollups' came on an SDK topic" in reasons[3] and "'alerts' came on an SDK topic" in reasons[4]
    assert "empty" in reasons[5]
    tables = builder.tables()
    assert tables["metric_points"].num_rows == 20 and tables["alert_rules"].num_rows == 1
    assert "metric_rollups" not in tables and "alerts" not in tables


def test_derived_rows_are_accepted_on_the_processors_topics() -> None:
    builder = TableBuilder(sdk_topics=SDK_TOPICS)
    builder.add([event(forged_rollup("r"), 0, topic="t.derived", key=b"r")])
    tables = builder.tables()
    assert tables["metric_rollups"].num_rows == 1 and "dead_letters" not in tables


def test_an_error_nobody_foresaw_while_converting_is_a_dead_letter_not_a_crash(monkeypatch) -> None:
    """Without the depth limit the old failure comes back (json.dumps: RecursionError); it must not escape."""
    monkeypatch.setattr(limits, "MAX_DEPTH", 100_000)
    builder = TableBuilder(sdk_topics=SDK_TOPICS)
    builder.add([points(0), event(deep_record("bad", depth=1_000), 1), points(2)])
    reasons = dead_letters(builder)
    assert list(reasons) == [1] and reasons[1].startswith("RecursionError while converting a 'record' event")
    assert builder.tables()["metric_points"].num_rows == 20


def _clashing(offset: int, mean: list | np.ndarray) -> Record:
    """``rank_aggregates`` rows whose ``mean`` column is fine alone but cannot share an Arrow column with a float."""
    columns = {"run_id": ["r"] * len(mean), "metric": ["loss"] * len(mean), "step": [offset] * len(mean), "mean": mean}
    env = Envelope(kind="rows", run_id="r", sent_at=1.0, body={"table": "rank_aggregates", "columns": columns})
    return Record("t.derived", 0, offset, b"r", encode(env))


def test_rows_of_several_records_arrow_cannot_join_are_named_not_raised() -> None:
    builder = TableBuilder()
    builder.add([_clashing(0, [2**63 - 1]), _clashing(1, np.array([0.5])), points(2)])
    tables = builder.tables()
    assert "rank_aggregates" not in tables and tables["metric_points"].num_rows == 10
    assert "ArrowInvalid while building rank_aggregates rows" in builder.unbuilt["rank_aggregates"]


@pytest.fixture
def sink(store, tmp_path) -> ClickHouseSink:
    settings = Settings.build(home=tmp_path, topic_prefix="t")  # t.metrics, t.events, t.derived...
    return ClickHouseSink(settings, store.client)


def test_the_sink_lands_rows_arrow_could_not_join_by_halving(store, sink: ClickHouseSink) -> None:
    batch = [
        _clashing(0, [2**63 - 1]),
        _clashing(1, np.array([0.5])),
        points(2),
        event(forged_rollup("x"), 3, key=b"x"),
    ]
    sink.write([Batch(batch)])
    rows = store.owner.query("SELECT step, mean FROM rank_aggregates ORDER BY step").result_rows
    assert rows == [(0, float(2**63 - 1)), (1, 0.5)]
    dead = store.owner.query("SELECT offset, reason FROM dead_letters").result_rows
    assert [offset for offset, _ in dead] == [3] and "SDK topic" in dead[0][1]
    assert store.owner.query("SELECT count() FROM metric_rollups").result_rows == [(0,)]
