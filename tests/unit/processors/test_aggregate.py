"""The envelope aggregate: any split of a stream into batches reduces to the same answer."""

from __future__ import annotations

import numpy as np
from fleetlog.processors.core.aggregate import Aggregate, reduce
from hypothesis import given, settings
from hypothesis import strategies as st
from processor_helpers import reference, same

values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]))


@st.composite
def streams(draw):
    n = draw(st.integers(1, 40))
    steps = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))  # repeats: ties must be stable
    vals = draw(st.lists(values, min_size=n, max_size=n))
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), max_size=4))) if n > 1 else []
    return np.array(steps, np.int64), np.array(vals), cuts


def _one(agg: Aggregate) -> dict:
    cols = agg.columns()
    return {k: float(v[0]) for k, v in cols.items()}


@settings(max_examples=300, deadline=None)
@given(streams())
def test_reducing_batches_of_partial_aggregates_equals_the_definition(stream):
    step, value, cuts = stream
    ts = step * 10
    parts = []
    for chunk in np.split(np.arange(len(step)), cuts):
        keys = np.zeros(len(chunk), np.int64)
        _, agg, _ = reduce((keys,), Aggregate.of_points(step[chunk], ts[chunk], value[chunk]))
        parts.append(agg)
    merged = Aggregate.concat(parts)
    _, total, _ = reduce((np.zeros(len(merged), np.int64),), merged)
    got, want = _one(total), reference(step, value)
    for name, expected in want.items():
        assert same(got[name], float(expected)), (name, got[name], expected)
    assert got["first_ts"] == step.min() * 10 / 1000 and got["last_ts"] == step.max() * 10 / 1000


def test_groups_come_back_sorted_with_an_inverse_map():
    keys = (np.array([2, 1, 2, 1]), np.array([0, 5, 0, 4]))
    agg = Aggregate.of_points(np.arange(4), np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    (k0, k1), out, group = reduce(keys, agg)
    assert k0.tolist() == [1, 1, 2] and k1.tolist() == [4, 5, 0]
    assert out.count.tolist() == [1, 1, 2] and out.sum.tolist() == [4.0, 2.0, 4.0]
    assert group.tolist() == [2, 1, 2, 0]


def test_all_nonfinite_bucket_reports_nan_extremes_at_its_first_step():
    agg = Aggregate.of_points(np.array([7, 8]), np.array([0, 0]), np.array([np.nan, np.inf]))
    _, out, _ = reduce((np.zeros(2, np.int64),), agg)
    cols = out.columns()
    assert np.isnan(cols["min"][0]) and np.isnan(cols["max"][0]) and cols["min_step"][0] == 7
    assert cols["nonfinite"][0] == 2 and cols["sum"][0] == 0.0
