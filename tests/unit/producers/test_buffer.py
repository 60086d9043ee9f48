"""The point buffer: steps, bounds, drain."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fleetlog.producers._buffer import MetricBuffer


def test_steps_count_up_per_metric_and_follow_explicit_steps():
    buf = MetricBuffer(capacity=100, wake_at=50)
    for v in (1.0, 2.0, 3.0):
        buf.append("loss", v, None)
    buf.append("acc", 0.5, None)
    buf.append("loss", 9.0, 10)
    buf.append("loss", 10.0, None)
    out = buf.drain()
    names = [out.names[i] for i in out.name_idx]
    assert names == ["loss", "loss", "loss", "acc", "loss", "loss"]
    assert out.step.tolist() == [0, 1, 2, 0, 10, 11]
    assert out.value.tolist() == [1.0, 2.0, 3.0, 0.5, 9.0, 10.0]
    assert out.ts_ms.dtype == np.int64 and (np.diff(out.ts_ms) >= 0).all()
    assert buf.drain() is None


def test_full_buffer_drops_newest_counts_and_wakes_once_per_fill(caplog):
    wakes = []
    buf = MetricBuffer(capacity=10, wake_at=5, wake=lambda: wakes.append(1))
    for i in range(25):
        buf.append("x", float(i), None)
    assert len(buf) == 10 and buf.dropped == 15
    assert len(wakes) == 2  # at wake_at and at the first drop
    assert "buffer full" in caplog.text
    assert buf.drain().value.tolist() == [float(i) for i in range(10)]
    buf.append("x", 99.0, None)
    assert buf.drain().step.tolist() == [10]


@pytest.mark.parametrize(("name", "error"), [(3, TypeError), ("", ValueError), ("x" * 2000, ValueError)])
def test_bad_names_raise_at_the_call(name, error):
    with pytest.raises(error):
        MetricBuffer(capacity=10, wake_at=5).append(name, 1.0, None)


def _drained_while(buf: MetricBuffer, writers: list[threading.Thread]) -> list:
    """Everything drained by a thread draining as fast as it can while ``writers`` append, then the rest."""
    drained = []
    done = threading.Event()

    def drainer():
        while not done.is_set():
            out = buf.drain()
            if out is not None:
                drained.append(out)

    t = threading.Thread(target=drainer)
    t.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    t.join()
    last = buf.drain()
    return drained + ([last] if last is not None else [])


def test_concurrent_appends_and_drains_lose_nothing():
    buf = MetricBuffer(capacity=10_000_000, wake_at=5_000_000)
    workers = [
        threading.Thread(target=lambda k=k: [buf.append(f"m{k}", 1.0, None) for _ in range(50_000)]) for k in range(4)
    ]
    steps = {}
    for out in _drained_while(buf, workers):
        for i, s in zip(out.name_idx.tolist(), out.step.tolist(), strict=True):
            steps.setdefault(out.names[i], []).append(s)
    assert {k: sorted(v) for k, v in steps.items()} == {f"m{k}": list(range(50_000)) for k in range(4)}


def test_resume_continues_after_last_steps():
    buf = MetricBuffer(capacity=10, wake_at=5)
    buf.resume_steps({"loss": 41})
    buf.append("loss", 1.0, None)
    assert buf.drain().step.tolist() == [42]


def test_concurrent_batches_and_drains_keep_points_whole():
    """Each point's value encodes its metric and step: a torn record would not match."""
    buf = MetricBuffer(capacity=10_000_000, wake_at=5_000_000)

    def batches(k):
        for step in range(5_000):
            buf.append_many({f"t{k}/m{j}": float(k * 1_000_000 + step * 10 + j) for j in range(10)}, step, float)

    seen = 0
    for out in _drained_while(buf, [threading.Thread(target=batches, args=(k,)) for k in range(3)]):
        for i, s, v in zip(out.name_idx.tolist(), out.step.tolist(), out.value.tolist(), strict=True):
            k, j = (int(x[1:]) for x in out.names[i].split("/"))
            assert v == k * 1_000_000 + s * 10 + j
            seen += 1
    assert seen == 3 * 5_000 * 10


def test_batches_share_one_time_and_a_bad_value_adds_nothing():
    buf = MetricBuffer(capacity=100, wake_at=50)

    def convert(name, value):
        raise TypeError(f"bad {name}")

    with pytest.raises(TypeError, match="bad b"):
        buf.append_many({"a": 1.0, "b": "x"}, None, convert)
    assert len(buf) == 0
    buf.append_many({"a": 1.0, "b": 2.0}, 7, convert)
    out = buf.drain()
    assert out.step.tolist() == [7, 7] and out.ts_ms[0] == out.ts_ms[1]


def test_steps_beyond_int64_raise_and_add_nothing():
    buf = MetricBuffer(capacity=10, wake_at=5)
    with pytest.raises(ValueError, match="64-bit"):
        buf.append("x", 1.0, 2**63)
    buf.append("x", 1.0, 2**63 - 1)
    assert len(buf) == 1 and buf.drain().step.tolist() == [2**63 - 1]


def test_a_full_buffer_drops_whole_batches():
    buf = MetricBuffer(capacity=5, wake_at=5)
    buf.append_many({"a": 1.0, "b": 2.0, "c": 3.0}, None, float)
    buf.append_many({"a": 1.0, "b": 2.0, "c": 3.0}, None, float)
    assert len(buf) == 3 and buf.dropped == 3
    assert buf.next_step("a") == 1


def _float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: not a number")
    return float(value)


def _step(name, step):
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"{name}: step not an int")
    return int(step)


def test_logger_closure_behaves_as_checks_plus_append_and_survives_a_fork_reset():
    wakes = []
    buf = MetricBuffer(capacity=6, wake_at=3, wake=lambda: wakes.append(1))
    log = buf.logger(_float, _step)
    log("loss", 1.0)
    log("loss", 2)  # converted
    log("acc", 0.5, step=7)
    log("loss", 3.0, "a description", None)
    with pytest.raises(TypeError, match="not a number"):
        log("loss", "high")
    with pytest.raises(TypeError, match="step not an int"):
        log("loss", 1.0, step=1.5)
    with pytest.raises(ValueError, match="64-bit"):
        log("loss", 1.0, step=2**63)
    with pytest.raises(TypeError):
        log(7, 1.0)
    out = buf.drain()
    assert [out.names[i] for i in out.name_idx] == ["loss", "loss", "acc", "loss"]
    assert out.step.tolist() == [0, 1, 7, 2] and out.value.tolist() == [1.0, 2.0, 0.5, 3.0]
    for i in range(8):  # past wake_at, then past capacity: the same bounds as append
        log("x", float(i))
    assert len(buf) == 6 and buf.dropped == 2 and len(wakes) == 3  # a fill before the drain, one now, one drop
    buf.reset_after_fork()
    log("loss", 4.0)  # the closure still writes into the buffer a fork reset cleared
    after = buf.drain()
    assert after.value.tolist() == [4.0] and after.step.tolist() == [3]
