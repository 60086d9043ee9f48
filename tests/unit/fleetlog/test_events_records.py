"""decode_record (the checks every stage applies to a Kafka record) and the one dead-letter shape."""

from __future__ import annotations

import numpy as np
import pytest

from fleetlog.errors import FleetlogError
from fleetlog.events import (
    DEAD_LETTER_COLUMNS,
    DeadLetter,
    DictColumn,
    Envelope,
    InvalidEvent,
    Record,
    dead_letter_columns,
    decode,
    decode_record,
    encode,
)

ROLLUP = {"table": "metric_rollups", "columns": {"run_id": ["r"], "step": [1]}}


def record(env: Envelope, key: bytes | None = b"r", topic: str = "t.events") -> Record:
    return Record(topic, 0, 7, key, encode(env))


def test_a_record_decodes_when_its_key_is_its_run_or_missing() -> None:
    env = Envelope(kind="params", run_id="r", body={"lr": 0.1})
    assert decode_record(record(env), from_sdk=True).body == {"lr": 0.1}
    assert decode_record(record(env, key=None), from_sdk=True).run_id == "r"


def test_a_key_that_is_not_the_run_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="does not match run id 'r'"):
        decode_record(record(Envelope(kind="params", run_id="r", body={}), key=b"other"), from_sdk=False)


def test_derived_rows_are_refused_only_on_sdk_topics() -> None:
    forged = record(Envelope(kind="rows", run_id="r", body=ROLLUP))
    with pytest.raises(InvalidEvent, match="came on an SDK topic") as caught:
        decode_record(forged, from_sdk=True)
    assert isinstance(caught.value, FleetlogError) and isinstance(caught.value, ValueError)
    assert decode_record(forged, from_sdk=False).body["table"] == "metric_rollups"


def test_a_dead_letter_keeps_the_raw_bytes_and_cuts_what_the_table_bounds() -> None:
    rec = Record("t.metrics", 3, 41, b"\xffk" * 600, b"\xc1" + b"x" * (2 << 20))
    dead = DeadLetter.of(rec, "r" * 5000, stage="sink", now=1.5)
    assert (dead.received_at, dead.stage, dead.topic, dead.partition, dead.offset) == (1.5, "sink", "t.metrics", 3, 41)
    assert len(dead.key) == 1024 and dead.key.startswith("\ufffdk") and len(dead.reason) == 4096
    assert dead.payload == rec.value[: 1 << 20]


def test_dead_letter_columns_travel_as_typed_columns_and_come_back_equal() -> None:
    letters = [
        DeadLetter.of(Record("t.metrics", 1, i, b"r", b"\x00\xff"), f"bad {i}", stage="processor", now=2.0 + i)
        for i in range(3)
    ]
    columns = dead_letter_columns(letters)
    assert tuple(columns) == DEAD_LETTER_COLUMNS and dead_letter_columns([]) == {}
    body = decode(encode(Envelope(kind="rows", run_id="-", body={"table": "dead_letters", "columns": columns}))).body
    got = body["columns"]
    assert got["received_at"].dtype == np.float64 and got["received_at"].tolist() == [2.0, 3.0, 4.0]
    assert got["offset"].dtype == np.uint64 and got["partition"].dtype == np.uint32
    assert isinstance(got["reason"], DictColumn) and got["reason"].tolist() == ["bad 0", "bad 1", "bad 2"]
    assert got["payload"] == [b"\x00\xff"] * 3
