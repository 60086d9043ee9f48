"""Derived ``rows`` records -> Arrow tables: typed columns without copies, old list messages beside new ones."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.query import arrow_buffer
from fleetlog.processors.emit import concat_columns, rows_messages
from fleetlog.sinks.rows import Record, TableBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.events import DictColumn, Envelope, encode


def _record(columns: dict, offset: int = 0, table: str = "rank_aggregates") -> Record:
    env = Envelope(kind="rows", run_id="r", sent_at=1.0, body={"table": table, "columns": columns})
    return Record("t.derived", 0, offset, b"r", encode(env))


def _aggregates(n: int, metrics=("loss", "acc")) -> dict:
    return {
        "run_id": DictColumn.repeat("r", n),
        "metric": DictColumn.of([metrics[i % len(metrics)] for i in range(n)]),
        "step": np.arange(n, dtype=np.int64),
        "mean": np.linspace(0.0, 1.0, n),
        "ts": np.full(n, 1.7e9),
        "complete": np.ones(n, np.uint8),
    }


def test_typed_rows_become_dictionary_and_numeric_arrow_columns():
    b = TableBuilder()
    b.add([_record(_aggregates(4))])
    t = b.tables()["rank_aggregates"]
    assert t.schema.field("metric").type == pa.dictionary(pa.int32(), pa.string())
    assert t.schema.field("step").type == pa.int64() and t.schema.field("complete").type == pa.uint8()
    assert t.column("metric").to_pylist() == ["loss", "acc", "loss", "acc"]
    assert t.column("mean").to_pylist() == np.linspace(0.0, 1.0, 4).tolist()


def test_parts_with_different_dictionaries_share_one_and_write_as_one_arrow_file():
    b = TableBuilder()
    b.add([_record(_aggregates(3, ("a", "b")), 0), _record(_aggregates(2, ("c",)), 1)])
    t = b.tables()["rank_aggregates"]
    chunks = t.column("metric").chunks
    assert all(c.dictionary.equals(chunks[0].dictionary) for c in chunks)
    assert t.column("metric").to_pylist() == ["a", "b", "a", "c", "c"]
    arrow_buffer(t)  # what insert_arrow writes: an IPC file, which cannot replace a dictionary mid-stream


def test_list_messages_from_older_processors_join_typed_ones():
    old = {
        "run_id": ["r", "r"],
        "metric": ["x", "loss"],
        "step": [7, 8],
        "mean": [0.5, 0.25],
        "ts": [1.7e9, 1.7e9],
        "complete": [1, 0],
    }
    b = TableBuilder()
    b.add([_record(_aggregates(2), 0), _record(old, 1)])
    tables = b.tables()
    assert "dead_letters" not in tables
    t = tables["rank_aggregates"]
    assert t.num_rows == 4 and t.column("metric").to_pylist() == ["loss", "acc", "x", "loss"]
    assert t.column("complete").to_pylist() == [1, 1, 1, 0]
    arrow_buffer(t)


def test_a_message_whose_types_clash_with_the_batch_is_a_dead_letter_and_the_rest_lands():
    clash = {**_aggregates(2), "step": ["a", "b"]}
    b = TableBuilder()
    b.add([_record(_aggregates(2), 0), _record(clash, 1), _record(_aggregates(3), 2)])
    tables = b.tables()
    assert tables["rank_aggregates"].num_rows == 5
    [dead] = tables["dead_letters"].to_pylist()
    assert dead["offset"] == 1 and "do not match" in dead["reason"]


def test_rows_from_the_processors_emitter_land_column_for_column():
    parts = [_aggregates(1500, ("a", "b", "c")), _aggregates(700, ("d",))]
    cols = concat_columns(parts)
    messages = list(rows_messages("r", "rank_aggregates", cols, max_bytes=9000))
    records = [Record("t.derived", 0, i, b"r", m) for i, m in enumerate(messages)]
    assert len(records) > 1
    b = TableBuilder()
    b.add(records)
    t = b.tables()["rank_aggregates"]
    assert t.column("metric").to_pylist() == cols["metric"].tolist()
    assert np.array_equal(t.column("step").to_numpy(), cols["step"])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_mutated_rows_records_become_dead_letters_never_errors(seed):
    rng = random.Random(seed)
    records = []
    for offset in range(4):
        buf = bytearray(_record(_aggregates(rng.randrange(1, 6)), offset).value)
        for _ in range(rng.randrange(0, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        records.append(Record("t.derived", 0, offset, b"r", bytes(buf)))
    b = TableBuilder()
    b.add(records)
    tables = b.tables()
    landed = sum(t.num_rows for name, t in tables.items() if name != "dead_letters")
    dead = tables["dead_letters"].num_rows if "dead_letters" in tables else 0
    assert dead <= 4 and (landed > 0 or dead > 0)
    for t in tables.values():
        arrow_buffer(t)  # columns may be wrong for ClickHouse (that is its error to give), never for Arrow


def _processor_dead_letter(offset: int) -> Record:
    """A dead-letter row as the processors emit it (unix seconds, raw payload bytes)."""
    columns = concat_columns(
        [
            {
                "received_at": [1.7e9 + 0.25],
                "stage": ["processor"],
                "topic": ["t.metrics"],
                "partition": [3],
                "offset": [41],
                "key": ["r"],
                "reason": ["bad rank"],
                "payload": [b"\xff\x00garbage"],
            }
        ]
    )
    env = Envelope(
        kind="rows", run_id="-dead-letters-", sent_at=1.0, body={"table": "dead_letters", "columns": columns}
    )
    return Record("t.dead-letters", 0, offset, b"-dead-letters-", encode(env))


def test_dead_letters_of_both_stages_in_one_batch_are_one_table_and_land(store):
    b = TableBuilder()
    b.add([_processor_dead_letter(0), Record("t.dead-letters", 0, 1, b"r", b"\xc1 not msgpack")])
    tables = b.tables()
    dead = tables["dead_letters"]
    assert sorted(dead.column("stage").to_pylist()) == ["processor", "sink"]
    store.client.insert_arrow("dead_letters", dead, settings={"insert_deduplication_token": "t:0:0-1"})
    rows = store.owner.query(
        "SELECT stage, offset, reason, payload, toUnixTimestamp64Milli(received_at) FROM dead_letters ORDER BY stage",
        column_formats={"payload": "bytes"},
    ).result_rows
    assert [r[0] for r in rows] == ["processor", "sink"]
    assert rows[0][1:] == (41, "bad rank", b"\xff\x00garbage", 1_700_000_000_250)
    assert rows[1][1] == 1 and rows[1][2] and rows[1][3] == b"\xc1 not msgpack"  # the raw bytes, like the processor's


def test_dead_letters_from_a_processor_in_another_shape_are_refused_alone():
    b = TableBuilder()
    bad = {"received_at": ["yesterday"], "stage": ["processor"]}  # missing columns, text time
    b.add([_record(bad, 0, table="dead_letters"), _record(_aggregates(2), 1)])
    tables = b.tables()
    assert tables["rank_aggregates"].num_rows == 2
    assert tables["dead_letters"].column("stage").to_pylist() == ["sink"]
    assert "unknown shape" in tables["dead_letters"].column("reason").to_pylist()[0]


def test_events_with_nothing_to_store_add_no_table_and_never_fail_the_batch():
    empty_tags = Envelope(kind="tags", run_id="r", sent_at=1.0, body={})
    b = TableBuilder()
    b.add([Record("t.events", 0, 0, b"r", encode(empty_tags)), _record(_aggregates(2), 1)])
    tables = b.tables()
    assert "run_tags" not in tables and tables["rank_aggregates"].num_rows == 2
