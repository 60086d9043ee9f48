"""Decoding bounds nesting and sizes before anything recurses over or allocates for a message.

One message nested 1,000 deep once killed the sink with ``RecursionError`` (``json.dumps`` of a
record's data), at the same offset after every restart.  ``decode`` now refuses more than
``MAX_DEPTH`` levels and any declared length beyond what the message can hold, with
``InvalidEvent`` only, and the checks leave the hot path -- columnar metric batches -- as fast
as it was.
"""

from __future__ import annotations

import time
import timeit

import msgpack
import numpy as np
import pytest

from fleetlog.events import MAX_DEPTH, Envelope, InvalidEvent, Source, decode, encode, encode_metrics

HEADER = {"v": 1, "kind": "record", "project": "", "experiment": "", "run": "r", "src": ["h", 1, 0, 1]}


def nested_list(levels: int) -> list:
    """``levels`` lists, one inside the other: ``nested_list(1) == []``."""
    data: list = []
    for _ in range(levels - 1):
        data = [data]
    return data


def nested_maps(levels: int) -> dict:
    data: dict = {}
    for i in range(levels - 1):
        data = {f"k{i}": data, "scalar": i}
    return data


def record(data: object) -> bytes:
    """A ``record`` event: the envelope is level 1, its body level 2, ``data`` level 3."""
    return encode(Envelope(kind="record", run_id="r", body={"name": "n", "type": "list", "data": data, "time": 1.0}))


def refused(data: bytes) -> str:
    try:
        decode(data)
    except InvalidEvent as exc:
        return exc.reason
    raise AssertionError("decoded")


def best_seconds(fn, number: int = 20) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


@pytest.mark.parametrize("nest", [nested_list, nested_maps])
def test_a_message_64_levels_deep_decodes_and_65_is_refused_quickly(nest) -> None:
    ok, deep = record(nest(MAX_DEPTH - 2)), record(nest(MAX_DEPTH - 1))
    assert decode(ok).body["data"] == nest(MAX_DEPTH - 2)
    with pytest.raises(InvalidEvent, match=f"more than {MAX_DEPTH} levels deep"):
        decode(deep)
    assert best_seconds(lambda: decode(ok)) < 0.005
    assert best_seconds(lambda: refused(deep)) < 0.005


def test_deep_nesting_below_the_first_levels_is_found_in_a_wide_structure() -> None:
    """100,000 scalars in 10,000 lists, and one branch far below them: the walk sees all of it."""
    wide = [[float(i)] * 9 for i in range(10_000)]
    assert decode(record(wide)).body["data"] == wide
    started = time.perf_counter()
    with pytest.raises(InvalidEvent, match="levels deep"):
        decode(record([*wide, nested_list(1_000)]))
    assert time.perf_counter() - started < 1.0


def _with_raw_body(raw_body: bytes) -> bytes:
    """A well-formed envelope whose body is ``raw_body``: a msgpack header written by hand."""
    head = {**HEADER, "session": "", "seq": 0, "sent": 1.0}
    packer = msgpack.Packer()
    out = packer.pack_map_header(len(head) + 1)
    out += b"".join(packer.pack(k) + packer.pack(v) for k, v in head.items())
    return out + packer.pack("body") + raw_body


def test_nesting_past_msgpacks_own_stack_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidEvent, match="not a msgpack message"):
        decode(_with_raw_body(b"\x91" * 5_000 + b"\x90"))  # 5,001 lists: msgpack cannot even write it


@pytest.mark.parametrize(
    ("header", "limit"),
    [
        (b"\xdd\xff\xff\xff\xff", "max_array_len"),  # array of 4 billion elements
        (b"\xdf\xff\xff\xff\xff", "max_map_len"),  # map of 4 billion pairs
        (b"\xdb\xff\xff\xff\xff", ""),  # string of 4 GiB
        (b"\xc6\xff\xff\xff\xff", ""),  # bytes of 4 GiB
        (b"\xc9\x7f\xff\xff\xff\x01", ""),  # extension type of 2 GiB
        (msgpack.packb(msgpack.Timestamp(1, 0)), "max_ext_len"),  # fleetlog never writes extension types
    ],
)
def test_a_declared_length_beyond_the_message_is_refused_without_allocating(header: bytes, limit: str) -> None:
    data = _with_raw_body(header)
    started = time.perf_counter()
    with pytest.raises(InvalidEvent, match="not a msgpack message") as refused:
        decode(data)
    assert limit in refused.value.reason
    assert time.perf_counter() - started < 0.1


def test_empty_and_oversized_values_are_refused() -> None:
    with pytest.raises(InvalidEvent, match="empty"):
        decode(b"")
    with pytest.raises(InvalidEvent, match="at most"):
        decode(bytes(65 << 20))


def test_metric_batches_decode_about_as_fast_as_msgpack_reads_them() -> None:
    """The checks must not tax the hot path.  Decoding a 30,000-point batch of 1,000 metrics took
    1.8-2.1x what msgpack alone takes for the same bytes both before the limits and after (the
    rest is checking the names and viewing the columns); anything touching each point in Python
    would be tens of times more, so 4x leaves room for a noisy machine and still catches that."""
    n, names = 30_000, [f"metric/{i}" for i in range(1_000)]
    env = Envelope(kind="metrics", run_id="r", source=Source(host="h"), sent_at=1.0)
    steps = np.arange(n, dtype=np.int64)
    idx = (steps % len(names)).astype(np.uint32)
    [(_, message)] = list(encode_metrics(env, names, idx, steps, steps, np.random.default_rng(0).random(n)))
    assert len(decode(message).metrics) == n
    ratio = best_seconds(lambda: decode(message)) / best_seconds(lambda: msgpack.unpackb(message))
    assert ratio < 4.0, f"decode takes {ratio:.2f}x msgpack.unpackb"
