"""Call-site validation of lists, rows, tables and Azure's structured payloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fleetlog.producers import _records as r


def test_lists_rows_and_tables_accept_numpy_and_keep_values():
    assert r.list_values("l", np.array([1, 2, 3])) == [1, 2, 3]
    assert r.list_values("l", (0.5, "a", None, True)) == [0.5, "a", None, True]
    assert r.row_values("t", {"epoch": np.int64(1), "loss": np.float32(0.5)}) == {"epoch": 1, "loss": 0.5}
    assert r.table_columns("t", {"a": [1, 2], "b": np.array([0.1, 0.2])}) == {"a": [1, 2], "b": [0.1, 0.2]}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: r.list_values("l", "abc"), TypeError, "expected a list"),
        (lambda: r.list_values("l", [1, object()]), TypeError, "cells must be"),
        (lambda: r.row_values("t", {}), ValueError, "at least one column"),
        (lambda: r.table_columns("t", {"a": [1, 2], "b": [1]}), ValueError, "equal lengths"),
        (lambda: r.table_columns("t", [1, 2]), TypeError, "dict of column"),
    ],
)
def test_wrong_shapes_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_confusion_matrix_must_be_square_and_labelled():
    good = {
        "schema_type": "confusion_matrix",
        "schema_version": "1.0.0",
        "data": {"class_labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]},
    }
    out = r.confusion_matrix("cm", json.dumps(good))
    assert out["data"]["matrix"] == [[3, 1], [0, 4]] and out["schema_type"] == "confusion_matrix"
    with pytest.raises(ValueError, match="2x2"):
        r.confusion_matrix("cm", {"data": {"class_labels": ["a", "b"], "matrix": [[1, 2, 3], [1, 2, 3]]}})
    with pytest.raises(ValueError, match="lacks"):
        r.confusion_matrix("cm", {"data": {"matrix": [[1]]}})
    with pytest.raises(ValueError, match="not valid JSON"):
        r.confusion_matrix("cm", "{nope")


def test_accuracy_table_shape_is_classes_by_thresholds_by_four():
    cell = [1, 2, 3, 4]
    data = {
        "class_labels": ["a", "b"],
        "probability_thresholds": [0.1, 0.5, 0.9],
        "probability_tables": [[cell] * 3] * 2,
        "percentile_thresholds": [10, 50],
        "percentile_tables": [[cell] * 2] * 2,
    }
    assert r.accuracy_table("acc", {"data": data})["data"]["class_labels"] == ["a", "b"]
    bad = dict(data, probability_tables=[[cell] * 2] * 2)
    with pytest.raises(ValueError, match="probability_tables must be"):
        r.accuracy_table("acc", {"data": bad})


def test_predictions_and_residuals_need_n_plus_one_edges():
    p = {"bin_edges": [0, 1, 2], "bin_averages": [0.5, 1.5], "bin_errors": [0.1, 0.2], "bin_counts": [3, 4]}
    assert r.predictions("p", {"data": p})["schema_type"] == "predictions"
    with pytest.raises(ValueError, match="n\\+1"):
        r.predictions("p", {"data": dict(p, bin_edges=[0, 1])})
    assert r.residuals("res", {"data": {"bin_edges": [0, 1, 2], "bin_counts": [5, 6]}})["data"]["bin_counts"] == [5, 6]
    with pytest.raises(ValueError, match="one more"):
        r.residuals("res", {"data": {"bin_edges": [0, 1], "bin_counts": [5, 6]}})
    with pytest.raises(ValueError, match="finite numbers"):
        r.residuals("res", {"data": {"bin_edges": [0, 1, 2], "bin_counts": [5, float("nan")]}})
