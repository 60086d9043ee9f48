"""Kafka records -> per-table columns, with bad records turned into dead letters."""

from __future__ import annotations

import numpy as np
from fleetlog.sinks.rows import Record, TableBuilder

from fleetlog.events import Envelope, Source, encode, encode_metrics


def _metrics(run: str, names, idx, rank=0, offset=0) -> Record:
    n = len(idx)
    env = Envelope(kind="metrics", run_id=run, source=Source(rank=rank), session="s", seq=offset)
    [(_, msg)] = list(
        encode_metrics(
            env, names, np.array(idx, np.uint32), np.arange(n), np.arange(n) + 1000, np.arange(n, dtype=float)
        )
    )
    return Record("t.metrics", 0, offset, run.encode(), msg)


def test_points_from_many_runs_share_one_dictionary_per_column():
    b = TableBuilder()
    b.add([_metrics("r1", ["loss", "acc"], [0, 1, 0]), _metrics("r2", ["acc"], [0, 0], rank=2, offset=1)])
    t = b.tables()["metric_points"].to_pydict()
    assert t["run_id"] == ["r1", "r1", "r1", "r2", "r2"]
    assert t["metric"] == ["loss", "acc", "loss", "acc", "acc"]
    assert t["rank"] == [0, 0, 0, 2, 2]
    assert t["step"] == [0, 1, 2, 0, 1]
    assert t["value"] == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert b.points == 5 and b.records == 2


def test_run_params_and_tags_become_rows():
    env = Envelope(
        kind="run",
        run_id="r1",
        experiment="e",
        source=Source(host="h", rank=0, world_size=2),
        sent_at=10.0,
        body={
            "name": "n",
            "parent": "",
            "status": "Failed",
            "start": 5.0,
            "end": 9.0,
            "error": {"type": "ValueError", "message": "boom", "traceback": "tb"},
        },
    )
    params = Envelope(kind="params", run_id="r1", sent_at=11.0, body={"lr": 0.1, "deep.a": True, "n": None})
    b = TableBuilder()
    b.add([Record("t.events", 0, i, b"r1", encode(e)) for i, e in enumerate([env, params])])
    tables = b.tables()
    run = tables["runs"].to_pylist()[0]
    assert (run["status"], run["error_type"], run["error_message"], run["world_size"]) == (
        "Failed",
        "ValueError",
        "boom",
        2,
    )
    rows = {r["key"]: (r["value"], r["value_type"]) for r in tables["run_params"].to_pylist()}
    assert rows == {"lr": ("0.1", "float"), "deep.a": ("true", "bool"), "n": ("", "null")}


def test_bad_records_become_dead_letters_and_good_ones_still_land():
    good = _metrics("r1", ["loss"], [0, 0])
    wrong_key = _metrics("r2", ["loss"], [0])
    wrong_key = Record(wrong_key.topic, 0, 5, b"other", wrong_key.value)
    bad_body = Envelope(kind="params", run_id="r1", body={"x": [1, 2]})
    b = TableBuilder()
    b.add(
        [
            good,
            Record("t.metrics", 0, 3, b"k", b"\xff\x00garbage"),
            wrong_key,
            Record("t.events", 1, 4, b"r1", encode(bad_body)),
        ]
    )
    tables = b.tables()
    assert tables["metric_points"].num_rows == 2
    dead = tables["dead_letters"].to_pylist()
    assert [d["offset"] for d in dead] == [3, 5, 4]
    assert "not a msgpack" in dead[0]["reason"]
    assert "does not match run id" in dead[1]["reason"]
    assert "unsupported type list" in dead[2]["reason"]
    assert dead[0]["payload"] == b"\xff\x00garbage"  # the raw bytes, as the processors keep theirs
    assert {d["stage"] for d in dead} == {"sink"} and dead[1]["key"] == "other"
