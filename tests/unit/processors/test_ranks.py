"""Cross-rank aggregation and stragglers."""

from __future__ import annotations

import numpy as np
from fleetlog.processors.core.ranks import aggregate_ranks, check_stragglers


def pts(metric, step, rank, value, ts):
    return {
        "metric": np.asarray(metric, np.int64),
        "step": np.asarray(step, np.int64),
        "rank": np.asarray(rank, np.int64),
        "value": np.asarray(value, float),
        "ts": np.asarray(ts, np.int64),
    }


NONE = pts([], [], [], [], [])


def run(points, pending=NONE, *, world=2, watermark=0, flush=False, done=None, multi=True):
    return aggregate_ranks(
        points,
        pending,
        done_through=np.array([-1] if done is None else [done]),
        multi_rank=np.array([multi]),
        world_size=world,
        watermark_ms=watermark,
        timeout_ms=1000,
        flush=flush,
    )


def test_a_step_is_emitted_once_every_rank_reported_with_stats_and_the_slowest_rank():
    first = run(pts([0, 0], [1, 2], [0, 0], [1.0, 2.0], [10, 20]))
    assert len(first.rows["step"]) == 0 and first.pending["step"].tolist() == [1, 2]
    second = run(pts([0], [1], [1], [3.0], [50]), first.pending)
    r = {k: v.tolist() for k, v in second.rows.items()}
    assert r["step"] == [1] and r["ranks"] == [2] and r["complete"] == [1]
    assert r["mean"] == [2.0] and r["min"] == [1.0] and r["max"] == [3.0] and r["std"] == [1.0]
    assert r["slowest_rank"] == [1] and r["spread_ms"] == [40]
    assert second.pending["step"].tolist() == [2] and second.done_through.tolist() == [1]


def test_a_repeated_value_replaces_the_rank_s_earlier_one():
    out = run(pts([0, 0, 0], [1, 1, 1], [0, 0, 1], [1.0, 5.0, 3.0], [1, 2, 3]))
    assert out.rows["mean"].tolist() == [4.0]


def test_missing_ranks_time_out_on_event_time_or_at_a_flush():
    waiting = run(pts([0], [1], [0], [1.0], [100]), watermark=500)
    assert len(waiting.rows["step"]) == 0
    late = run(NONE, waiting.pending, watermark=1200)
    assert late.rows["complete"].tolist() == [0] and late.rows["ranks"].tolist() == [1]
    assert run(NONE, waiting.pending, flush=True).rows["step"].tolist() == [1]


def test_metrics_only_one_rank_logs_are_dropped_at_timeout_not_emitted():
    out = run(pts([0], [1], [0], [1.0], [100]), watermark=5000, multi=False)
    assert len(out.rows["step"]) == 0 and len(out.pending["step"]) == 0


def test_a_value_for_an_already_emitted_step_is_late():
    out = run(pts([0], [3], [1], [1.0], [100]), done=5)
    assert out.late.tolist() == [1] and len(out.pending["step"]) == 0


def test_a_rank_that_stays_slow_fires_once_and_rearms_after_catching_up():
    memory: dict = {}
    alerts = []
    ts = {0: 0, 1: 0, 2: 0}
    for i in range(1, 8):
        for r in ts:
            ts[r] += 100 if r != 2 or i > 5 else 300  # rank 2 takes 3x as long for 4 batches
        alerts += check_stragglers({r: (i * 10, t) for r, t in ts.items()}, memory, factor=1.5, patience=3)
    assert [(a.rank, a.step) for a in alerts] == [(2, 40)]
    assert memory["2"][3] == 0  # caught up: re-armed
