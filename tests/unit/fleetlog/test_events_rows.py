"""``rows`` events: typed binary columns, dictionary columns, the older list form, and hostile bodies."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutation import decode_mutated

from fleetlog.events import ROW_DTYPES, DictColumn, Envelope, InvalidEvent, decode, encode


def _rows(columns: dict, table: str = "rank_aggregates") -> bytes:
    return encode(Envelope(kind="rows", run_id="r", sent_at=1.5, body={"table": table, "columns": columns}))


def _typed_columns(n: int = 6) -> dict:
    return {
        "run_id": DictColumn.repeat("r", n),
        "metric": DictColumn.of(["loss", "acc"] * (n // 2)),
        "step": np.arange(n, dtype=np.int64),
        "mean": np.linspace(0, 1, n),
        "ranks": np.full(n, 2, np.uint32),
        "complete": np.ones(n, np.uint8),
        "flag": np.arange(n) % 2 == 0,
        "half": np.arange(n, dtype=np.float32),
    }


def test_typed_columns_round_trip_as_read_only_arrays_and_dictionaries():
    cols = _typed_columns()
    back = decode(_rows(cols)).body["columns"]
    for name in ("step", "mean", "ranks", "complete", "flag", "half"):
        assert back[name].dtype == cols[name].dtype and np.array_equal(back[name], cols[name]), name
        assert not back[name].flags.writeable  # a view of the message, not a copy
    assert back["metric"].values == ("loss", "acc") and back["metric"].tolist() == cols["metric"].tolist()
    assert list(back["run_id"]) == ["r"] * 6


def test_the_wire_holds_buffers_not_one_object_per_value():
    raw = msgpack.unpackb(_rows(_typed_columns()))["body"]["columns"]
    assert raw["mean"] == {"dtype": "<f8", "data": np.linspace(0, 1, 6).tobytes()}
    assert raw["metric"] == {"dictionary": ["loss", "acc"], "indices": np.array([0, 1] * 3, "<i4").tobytes()}


def test_big_endian_arrays_travel_little_endian_and_objects_as_lists():
    back = decode(_rows({"x": np.arange(3, dtype=">i8"), "o": np.array([None, 1, "a"], object)})).body["columns"]
    assert back["x"].dtype == np.dtype("<i8") and back["x"].tolist() == [0, 1, 2]
    assert back["o"] == [None, 1, "a"]


def test_a_slice_carries_only_the_strings_its_rows_use():
    col = DictColumn.of(["a", "b", "c", "b"])[1:2]
    raw = msgpack.unpackb(_rows({"m": col}))["body"]["columns"]["m"]
    assert raw["dictionary"] == ["b"] and np.frombuffer(raw["indices"], "<i4").tolist() == [0]


def test_list_columns_of_older_writers_still_decode_beside_typed_ones():
    body = {"table": "run_summaries", "columns": {"run_id": ["r", "r"], "end_time": [None, 2.0]}}
    raw = {"v": 1, "kind": "rows", "run": "r", "src": ["", 0, 0, 1], "session": "", "seq": 0, "sent": 1.0}
    back = decode(msgpack.packb({**raw, "body": body, "project": "", "experiment": ""})).body["columns"]
    assert back == body["columns"]
    mixed = decode(_rows({"end": [None, 1.0], "n": np.array([1, 2])})).body["columns"]
    assert mixed["end"] == [None, 1.0] and mixed["n"].tolist() == [1, 2]


def _raw_rows(**columns) -> bytes:
    raw = msgpack.unpackb(_rows({"ok": np.arange(4, dtype=np.int64)}))
    raw["body"]["columns"].update(columns)
    return msgpack.packb(raw)


def _i4(*values: int) -> bytes:
    return np.array(values, "<i4").tobytes()


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ({"dtype": "<c16", "data": b"\x00" * 64}, "unknown dtype"),
        ({"dtype": "O", "data": b"\x00" * 32}, "unknown dtype"),
        ({"dtype": 8, "data": b"\x00" * 32}, "unknown dtype"),
        ({"dtype": "<f8", "data": b"\x00" * 31}, "not a multiple of 8"),
        ({"dtype": "<f8", "data": b"\x00" * 40}, "different lengths"),
        ({"dtype": "<f8", "data": "text"}, "'data' must be bytes"),
        ({"dtype": "|b1", "data": b"\x00\x01\x02\x00"}, "other than 0 and 1"),
        ({"dictionary": ["a"], "indices": _i4(0, 0, 1, 0)}, "outside its dictionary"),
        ({"dictionary": ["a"], "indices": _i4(0, -1, 0, 0)}, "outside its dictionary"),
        ({"dictionary": [], "indices": _i4(0, 0, 0, 0)}, "outside its dictionary"),
        ({"dictionary": ["a", 1], "indices": _i4(0, 0, 0, 0)}, "list of at most"),
        ({"dictionary": "ab", "indices": _i4(0, 0, 0, 0)}, "list of at most"),
        ({"dictionary": ["a"], "indices": b"\x00" * 15}, "not a multiple of 4"),
        ({"dictionary": ["a"]}, "'indices' must be bytes"),
        ({"data": b""}, "neither 'dtype' nor 'dictionary'"),
        ("text", "must be a list, a typed buffer or a dictionary"),
        ([1, 2], "different lengths"),
    ],
)
def test_malformed_typed_columns_raise_invalid_event_with_a_reason(column, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(_raw_rows(bad=column))


def test_sizes_are_bounded():
    with pytest.raises(InvalidEvent, match="columns"):
        decode(_raw_rows(**{f"c{i}": [1, 2, 3, 4] for i in range(1100)}))
    with pytest.raises(InvalidEvent, match="at most"):
        decode(_raw_rows(big={"dtype": "|u1", "data": b"\x00" * ((1 << 24) + 1)}))


def test_every_whitelisted_dtype_round_trips():
    cols = {dtype: np.zeros(3, np.dtype(dtype)) for dtype in ROW_DTYPES}
    back = decode(_rows(cols)).body["columns"]
    assert {name: col.dtype.str for name, col in back.items()} == {d: d for d in ROW_DTYPES}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_typed_rows_never_raise_anything_but_invalid_event(data):
    decode_mutated(data, _rows(_typed_columns(4)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b/c", "ü", ""]), max_size=50), st.integers(0, 50), st.integers(0, 50))
def test_dictionary_columns_survive_any_slice(strings, lo, hi):
    col = DictColumn.of(strings)
    back = decode(_rows({"s": col[lo:hi]})).body["columns"]["s"]
    assert back.tolist() == strings[lo:hi] and len(set(back.values)) == len(back.values)
