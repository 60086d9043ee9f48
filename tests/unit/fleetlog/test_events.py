"""The wire format: round trips, splitting, and untrusted bytes."""

from __future__ import annotations

import contextlib
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutation import decode_mutated

from fleetlog.events import Envelope, InvalidEvent, Source, decode, encode, encode_metrics


def _env(**kw) -> Envelope:
    base = dict(
        kind="metrics",
        run_id="run-1",
        project="p",
        experiment="e",
        source=Source(host="h", pid=7, rank=3, world_size=8),
        session="s",
        seq=5,
        sent_at=1.5,
    )
    base.update(kw)
    return Envelope(**base)


def _points(n: int, names=("loss", "lr")):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(names), n).astype(np.uint32)
    return (
        list(names),
        idx,
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64) + 1_700_000_000_000,
        rng.random(n),
    )


def test_metrics_round_trip_keeps_every_column():
    names, idx, step, ts, value = _points(1000)
    [(count, msg)] = list(encode_metrics(_env(), names, idx, step, ts, value))
    env = decode(msg)
    assert count == 1000
    assert (env.run_id, env.project, env.experiment, env.session, env.seq) == ("run-1", "p", "e", "s", 5)
    assert env.source == Source(host="h", pid=7, rank=3, world_size=8)
    batch = env.metrics
    assert list(batch.metric_names()) == [names[i] for i in idx]
    np.testing.assert_array_equal(batch.step, step)
    np.testing.assert_array_equal(batch.ts_ms, ts)
    np.testing.assert_array_equal(batch.value, value)
    assert env.key == b"run-1"


def test_non_finite_values_survive():
    value = np.array([math.nan, math.inf, -math.inf, 0.0])
    [(_, msg)] = list(encode_metrics(_env(), ["x"], np.zeros(4, np.uint32), np.arange(4), np.arange(4), value))
    out = decode(msg).metrics.value
    assert math.isnan(out[0]) and out[1] == math.inf and out[2] == -math.inf


def test_large_batches_split_under_the_size_limit_with_consecutive_sequence_numbers():
    names, idx, step, ts, value = _points(100_000, names=tuple(f"m{i}" for i in range(50)))
    chunks = list(encode_metrics(_env(seq=10), names, idx, step, ts, value, max_bytes=200_000))
    assert len(chunks) > 10
    assert all(len(msg) <= 200_000 for _, msg in chunks)
    decoded = [decode(msg) for _, msg in chunks]
    assert [d.seq for d in decoded] == list(range(10, 10 + len(chunks)))
    assert sum(n for n, _ in chunks) == 100_000
    np.testing.assert_array_equal(np.concatenate([d.metrics.value for d in decoded]), value)
    got = np.concatenate([d.metrics.metric_names() for d in decoded])
    assert list(got) == [names[i] for i in idx]


def test_other_events_round_trip():
    env = _env(kind="params", body={"lr": 0.1, "model.layers": 4, "name": "x", "flag": True, "none": None})
    assert decode(encode(env)) == env


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not a msgpack"),
        (b"\xc1", "not a msgpack"),
        (msgpack.packb([1, 2]), "must be a map"),
        (msgpack.packb({"v": 99}), "unsupported schema version"),
        (msgpack.packb({"v": 1, "kind": "nope"}), "unknown event kind"),
        (msgpack.packb({"v": 1, "kind": "tags", "run": ""}), "empty run id"),
        (msgpack.packb({"v": 1, "kind": "tags", "run": "r", "src": ["h", 1, 2]}), "src"),
        (msgpack.packb({"v": True, "kind": "tags"}), "field 'v'"),
    ],
)
def test_malformed_envelopes_raise_only_invalid_event(payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(payload)


def _metrics_raw(**body):
    names, idx, step, ts, value = _points(4)
    [(_, msg)] = list(encode_metrics(_env(), names, idx, step, ts, value))
    raw = msgpack.unpackb(msg)
    raw["body"].update(body)
    return msgpack.packb(raw)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"value": b"\x00" * 7}, "not a multiple"),
        ({"value": b"\x00" * 16}, "different lengths"),
        ({"idx": np.array([0, 0, 0, 9], "<u4").tobytes()}, "past the names table"),
        ({"names": [1, 2]}, "list of strings"),
        ({"step": "text"}, "field 'step'"),
    ],
)
def test_malformed_metric_bodies_raise_invalid_event(body, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(_metrics_raw(**body))


def test_decoded_arrays_are_read_only_views_not_copies():
    names, idx, step, ts, value = _points(10)
    [(_, msg)] = list(encode_metrics(_env(), names, idx, step, ts, value))
    assert not decode(msg).metrics.value.flags.writeable


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_invalid_event(data):
    with contextlib.suppress(InvalidEvent):
        decode(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_messages_never_raise_anything_but_invalid_event(data):
    names, idx, step, ts, value = _points(8)
    [(_, msg)] = list(encode_metrics(_env(), names, idx, step, ts, value))
    decode_mutated(data, msg)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b/c", "ü", "x" * 300]),
            st.integers(-(2**62), 2**62),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        min_size=1,
        max_size=200,
    ),
    st.integers(300, 5000),
)
def test_any_points_round_trip_through_any_split(points, max_bytes):
    names = sorted({p[0] for p in points})
    idx = np.array([names.index(p[0]) for p in points], np.uint32)
    step = np.array([p[1] for p in points], np.int64)
    value = np.array([p[2] for p in points], np.float64)
    chunks = list(encode_metrics(_env(), names, idx, step, step, value, max_bytes=max_bytes))
    batches = [decode(m).metrics for _, m in chunks]
    assert [n for b in batches for n in b.metric_names()] == [p[0] for p in points]
    np.testing.assert_array_equal(np.concatenate([b.step for b in batches]), step)
    np.testing.assert_array_equal(np.concatenate([b.value for b in batches]), value)
