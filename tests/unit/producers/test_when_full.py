"""The declared when-full policies (``FLEETLOG_BUFFER_WHEN_FULL``): spool, drop_newest, block.

The buffer side runs without a network.  The end of the ``spool`` policy -- the spool
itself full -- runs through a real ``Sender`` in offline mode, where everything goes to
the spool, so the per-run drop count and its single warning are the real ones.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers.experiment import Experiment

from fleetlog.config import Settings


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_spool_policy_accepts_past_capacity_flags_the_overflow_and_wakes_the_sender_once():
    wakes = []
    buf = MetricBuffer(capacity=10, wake_at=5, wake=lambda: wakes.append(1), when_full="spool")
    for i in range(30):
        buf.append("x", float(i), None)
    assert len(buf) == 30 and buf.dropped == 0 and buf.overflowed
    assert len(wakes) == 2  # at wake_at, and once when it overflowed
    out = buf.drain()
    assert out.overflowed and out.value.tolist() == [float(i) for i in range(30)]
    assert not buf.overflowed and buf.drain() is None


def test_spool_policy_at_its_memory_bound_waits_for_the_sender_then_drops_counted_and_logged_once(caplog):
    buf = MetricBuffer(capacity=10, wake_at=5, when_full="spool", block_timeout_seconds=0.01)
    started = time.monotonic()
    for i in range(60):  # the bound is four capacities: the sender never ran, so each wait times out
        buf.append("x", float(i), None)
    buf.drain()
    for i in range(60):
        buf.append("x", float(i), None)
    assert buf.dropped == 40
    assert time.monotonic() - started >= 40 * 0.01  # it waited for the sender before each drop
    [record] = warnings(caplog, "buffer full")
    assert "40 points held, limit 40" in record.getMessage() and "not repeated" in record.getMessage()


def test_spool_policy_at_its_memory_bound_keeps_points_the_sender_spills_meanwhile():
    buf = MetricBuffer(capacity=10, wake_at=5, when_full="spool", block_timeout_seconds=5.0)
    for i in range(40):
        buf.append("x", float(i), None)
    drained = []
    sender = threading.Timer(0.05, lambda: drained.append(buf.drain()))  # the sender spills, a moment later
    sender.start()
    buf.append("x", 40.0, None)  # at the bound: waits for that drain instead of dropping
    sender.join()
    assert buf.dropped == 0
    assert drained[0].value.tolist() == [float(i) for i in range(40)] and buf.drain().value.tolist() == [40.0]


def test_drop_newest_counts_every_drop_and_warns_once_with_the_numbers(caplog):
    buf = MetricBuffer(capacity=10, wake_at=5, when_full="drop_newest")
    for _ in range(3):  # three fills, three drains
        buf.append_many({f"m{j}": 1.0 for j in range(4)}, None, float)
        for i in range(12):
            buf.append("x", float(i), None)
        buf.drain()
    assert buf.dropped == 3 * 6
    [record] = warnings(caplog, "buffer full")
    assert "10 points held, limit 10" in record.getMessage() and "drop_newest" in record.getMessage()


def test_block_waits_for_the_sender_to_drain_then_continues():
    buf = MetricBuffer(capacity=10, wake_at=10, when_full="block", block_timeout_seconds=30)
    for i in range(10):
        buf.append("x", float(i), None)
    drained = []
    drainer = threading.Timer(0.3, lambda: drained.append(buf.drain()))
    drainer.start()
    started = time.monotonic()
    buf.append("x", 10.0, None)  # full: waits for the drain above
    waited = time.monotonic() - started
    assert 0.2 < waited < 10 and buf.dropped == 0
    assert len(drained[0]) == 10 and buf.drain().value.tolist() == [10.0]


def test_block_gives_up_after_its_timeout_and_drops_counted(caplog):
    buf = MetricBuffer(capacity=5, wake_at=5, when_full="block", block_timeout_seconds=0.2)
    for i in range(5):
        buf.append("x", float(i), None)
    started = time.monotonic()
    buf.append("x", 5.0, None)
    buf.append_many({"a": 1.0, "b": 2.0}, None, float)
    assert 0.35 < time.monotonic() - started < 5  # two bounded waits, no more
    assert buf.dropped == 3 and len(buf) == 5
    [record] = warnings(caplog, "buffer full")
    assert "FLEETLOG_BLOCK_TIMEOUT_SECONDS=0.2" in record.getMessage()


def test_block_never_blocks_the_senders_own_thread():
    buf = MetricBuffer(capacity=2, wake_at=2, when_full="block", block_timeout_seconds=30)
    buf.sender_ident = threading.get_ident()  # as if this thread were the sender (it logs telemetry)
    started = time.monotonic()
    for i in range(4):
        buf.append("x", float(i), None)
    assert time.monotonic() - started < 1 and buf.dropped == 2


def test_unknown_policies_are_refused_where_configured():
    with pytest.raises(ValueError, match="FLEETLOG_BUFFER_WHEN_FULL"):
        Settings.build(buffer_when_full="drop_oldest")
    with pytest.raises(ValueError, match="FLEETLOG_BLOCK_TIMEOUT_SECONDS"):
        Settings.build(block_timeout_seconds=float("inf"))
    assert Settings.from_env({"FLEETLOG_BUFFER_WHEN_FULL": "block"}).sdk.buffer_when_full == "block"
    assert Settings().sdk.buffer_when_full == "spool"


def test_a_full_spool_drops_the_runs_points_counts_them_per_run_and_warns_once(tmp_path: Path, caplog):
    settings = Settings.build(
        home=tmp_path, mode="offline", spool_max_bytes=200_000, max_message_bytes=20_000, outputs_dir=""
    )
    exp = Experiment("full-spool", settings=settings)
    run = exp.start_logging(run_id="r-full", telemetry=False)
    for step in range(200):  # 20,000 points, about 560 kB encoded: more than the spool takes
        run.log_metrics({f"m{j}": float(j) for j in range(100)}, step=step)
        if step % 50 == 49:
            assert run.flush(30)  # offline: True once on disk (or counted as dropped)
    dropped = run.dropped_points
    stats = dict(exp._sender.stats)
    exp.close()
    assert 0 < dropped < 20_000 and stats["dropped_points"] == dropped
    assert stats["spooled_points"] == 20_000
    [record] = warnings(caplog, "spool full")
    assert "200000 bytes" in record.getMessage() and "without another warning" in record.getMessage()
