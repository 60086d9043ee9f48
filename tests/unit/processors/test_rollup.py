"""Rollups: closed buckets are emitted once complete, late points re-emit, old ones are counted, never partial."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fleetlog.processors.core.rollup import NONE, Buckets, bucket_points, update_rollups
from processor_helpers import reference, same

RES = (10, 100, 30)  # 30 does not nest in 100: reduced from points, not from the finer level


class Series:
    """Feed points to update_rollups the way the engine does, collecting everything emitted."""

    def __init__(self, n_series: int = 1, retained: int = 2, resolutions=(10, 30, 100)) -> None:
        self.res = tuple(sorted(resolutions))
        self.state = Buckets.empty()
        self.frontier = np.full((n_series, len(self.res)), NONE)
        self.evicted = np.full((n_series, len(self.res)), NONE)
        self.retained = retained
        self.emitted: list[Buckets] = []
        self.late = np.zeros(n_series, np.int64)

    def feed(self, series, step, value, *, ended=False, flush=False) -> Buckets:
        series, step, value = np.asarray(series, np.int64), np.asarray(step, np.int64), np.asarray(value, float)
        order = np.lexsort((step, series))
        new = bucket_points(series[order], step[order], step[order] * 10, value[order], self.res)
        result = update_rollups(
            self.state,
            self.frontier,
            self.evicted,
            new,
            resolutions=self.res,
            retained=self.retained,
            ended=ended,
            flush=np.full(len(self.frontier), flush),
        )
        self.state, self.frontier, self.evicted = result.state, result.frontier, result.evicted
        self.emitted.append(result.emitted)
        self.late += result.late
        return result.emitted

    def final(self) -> pd.DataFrame:
        """The newest version of every emitted bucket (what ReplacingMergeTree FINAL shows)."""
        e = Buckets.concat(self.emitted)
        df = pd.DataFrame({"series": e.series, "res": e.res, "bucket": e.bucket, **e.agg.columns()})
        return df.sort_values("count", kind="stable").groupby(["series", "res", "bucket"]).last()


def test_any_batching_gives_every_bucket_exactly_as_recomputed():
    rng = np.random.default_rng(3)
    n = 1000
    series = np.repeat([0, 1], n)
    step = np.tile(np.arange(n), 2)
    value = rng.standard_normal(2 * n)
    value[rng.integers(0, 2 * n, 40)] = np.nan
    s = Series(n_series=2)
    for chunk in np.array_split(np.arange(n), [3, 97, 98, 410, 777]):  # batches cut anywhere
        idx = np.concatenate([chunk, chunk + n])
        s.feed(series[idx], step[idx], value[idx])
    s.feed([], [], [], ended=True, flush=True)
    final = s.final()
    for res in s.res:
        for (ser, bucket), grp in pd.DataFrame({"s": series, "b": step // res, "step": step, "v": value}).groupby(
            ["s", "b"]
        ):
            row = final.loc[(ser, res, bucket)]
            for name, want in reference(grp["step"], grp["v"]).items():
                assert same(float(row[name]), float(want)), (res, bucket, name)
    assert s.late.sum() == 0


def test_a_bucket_is_emitted_when_the_next_one_starts_not_before():
    s = Series()
    assert len(s.feed([0] * 5, range(5), [1.0] * 5)) == 0  # bucket 0 of res 10 still open
    out = s.feed([0], [10], [1.0])
    assert sorted(zip(out.res.tolist(), out.bucket.tolist(), strict=False)) == [(10, 0)]
    assert s.feed([0], [11], [1.0]).res.size == 0


def test_late_point_in_a_retained_bucket_re_emits_it_with_a_higher_version():
    s = Series(retained=2)
    s.feed([0] * 40, range(40), np.ones(40))
    out = s.feed([0], [15], [9.0])  # bucket 1 at res 10 is closed but retained
    row = dict(zip(zip(out.res.tolist(), out.bucket.tolist(), strict=False), out.agg.count.tolist(), strict=False))
    assert row == {(10, 1): 11, (30, 0): 31}  # res 100's bucket 0 is still open: nothing to re-emit
    assert s.final().loc[(0, 10, 1), "max"] == 9.0


def test_points_for_evicted_buckets_are_counted_late_and_never_emitted_as_partial():
    s = Series(retained=1)
    s.feed([0] * 100, range(100), np.ones(100))
    out = s.feed([0, 0], [5, 6], [7.0, 8.0])  # bucket 0 at res 10 was evicted long ago
    assert (10, 0) not in set(zip(out.res.tolist(), out.bucket.tolist(), strict=False))
    assert s.late.tolist() == [2]
    assert s.final().loc[(0, 10, 0), "count"] == 10  # the complete bucket stands


def test_run_end_flushes_open_buckets_and_later_points_emit_at_once():
    s = Series()
    s.feed([0] * 5, range(5), np.ones(5))
    out = s.feed([], [], [], ended=True, flush=True)
    assert sorted(zip(out.res.tolist(), out.bucket.tolist(), out.agg.count.tolist(), strict=False)) == [
        (10, 0, 5),
        (30, 0, 5),
        (100, 0, 5),
    ]
    out = s.feed([0], [5], [2.0], ended=True)  # a straggling rank after the end
    assert sorted(out.agg.count.tolist()) == [6, 6, 6]


def test_new_series_state_starts_without_marks():
    s = Series()
    s.feed([0], [3], [1.0])
    assert s.frontier.tolist() == [[0, 0, 0]] and (s.evicted == NONE).all()
