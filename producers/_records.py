"""Validation for everything that is logged as one record rather than a series.

Each function checks a value where the user passed it, so a wrong shape raises
at the call site with a message that says what to pass instead, and returns the
JSON-like data that travels in a ``record`` event.  The structured payloads follow
Azure ML's schemas (``schema_type`` / ``schema_version`` / ``data``).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "accuracy_table",
    "confusion_matrix",
    "list_values",
    "predictions",
    "residuals",
    "row_values",
    "table_columns",
]

Scalar = int | float | str | bool | None


def _scalar(where: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", getattr(value, "dim", lambda: 0)) in (0, None):
        return _scalar(where, item())
    raise TypeError(f"{where}: cells must be numbers, strings, booleans or None, got {type(value).__name__}")


def _sequence(where: str, values: Any) -> list[Any]:
    """Any iterable of cells (Azure takes generators too), but not a string or a mapping."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(f"{where}: expected a list (or tuple, generator, 1-d array), got {type(values).__name__}")
    return list(values)


def list_values(name: str, values: Any) -> list[Scalar]:
    return [_scalar(f"log_list({name!r})", v) for v in _sequence(f"log_list({name!r})", values)]


def row_values(name: str, cells: Mapping[str, Any]) -> dict[str, Scalar]:
    if not cells:
        raise ValueError(f"log_row({name!r}) needs at least one column, e.g. log_row({name!r}, epoch=1, loss=0.3)")
    return {str(k): _scalar(f"log_row({name!r}) column {k!r}", v) for k, v in cells.items()}


def table_columns(name: str, value: Any) -> dict[str, list[Scalar]]:
    if not isinstance(value, Mapping) or not value:
        raise TypeError(f"log_table({name!r}) needs a dict of column name -> list of values")
    columns = {str(k): list_values(f"{name}.{k}", v) for k, v in value.items()}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"log_table({name!r}): columns must have equal lengths, got {lengths}")
    return columns


def _payload(kind: str, name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"log_{kind}({name!r}): not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise TypeError(f"log_{kind}({name!r}) needs a dict or a JSON string")
    data = value.get("data", value)
    if not isinstance(data, Mapping):
        raise ValueError(f"log_{kind}({name!r}): 'data' must be a mapping")
    return {"schema_type": kind, "schema_version": str(value.get("schema_version", "1.0.0")), "data": dict(data)}


def _need(kind: str, name: str, data: Mapping[str, Any], *keys: str) -> list[list[Any]]:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"log_{kind}({name!r}): 'data' lacks {missing}; it needs {list(keys)}")
    return [_sequence(f"log_{kind}({name!r}).{k}", data[k]) for k in keys]


def _numbers(where: str, values: list[Any]) -> None:
    for v in values:
        if isinstance(v, list):
            _numbers(where, v)
        elif not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{where}: expected finite numbers, found {v!r}")


def confusion_matrix(name: str, value: Any) -> dict[str, Any]:
    """``{"data": {"class_labels": [...], "matrix": [[...], ...]}}``, square and labelled."""
    out = _payload("confusion_matrix", name, value)
    labels, matrix = _need("confusion_matrix", name, out["data"], "class_labels", "matrix")
    n = len(labels)
    if len(matrix) != n or any(len(_sequence("matrix row", row)) != n for row in matrix):
        raise ValueError(f"log_confusion_matrix({name!r}): matrix must be {n}x{n} for {n} class labels")
    _numbers(f"log_confusion_matrix({name!r}).matrix", matrix)
    return out


def accuracy_table(name: str, value: Any) -> dict[str, Any]:
    """Per class and threshold, a [TP, FP, TN, FN] quadruple, for probability and percentile thresholds."""
    out = _payload("accuracy_table", name, value)
    data = out["data"]
    labels, probs, prob_thr, pct, pct_thr = _need(
        "accuracy_table",
        name,
        data,
        "class_labels",
        "probability_tables",
        "probability_thresholds",
        "percentile_tables",
        "percentile_thresholds",
    )
    for table, thresholds, what in ((probs, prob_thr, "probability"), (pct, pct_thr, "percentile")):
        if len(table) != len(labels) or any(
            len(per_class) != len(thresholds) or any(len(cell) != 4 for cell in per_class) for per_class in table
        ):
            raise ValueError(
                f"log_accuracy_table({name!r}): {what}_tables must be "
                f"[{len(labels)} classes][{len(thresholds)} thresholds][4 counts: TP, FP, TN, FN]"
            )
        _numbers(f"log_accuracy_table({name!r}).{what}_tables", table)
    return out


def predictions(name: str, value: Any) -> dict[str, Any]:
    """Binned regression predictions: averages, errors and counts per bin, plus bin edges."""
    out = _payload("predictions", name, value)
    edges, averages, errors, counts = _need(
        "predictions", name, out["data"], "bin_edges", "bin_averages", "bin_errors", "bin_counts"
    )
    if not (len(averages) == len(errors) == len(counts) == len(edges) - 1):
        raise ValueError(f"log_predictions({name!r}): need n bins of averages/errors/counts and n+1 bin_edges")
    _numbers(f"log_predictions({name!r})", [edges, averages, errors, counts])
    return out


def residuals(name: str, value: Any) -> dict[str, Any]:
    """A histogram of residuals: n counts and n+1 bin edges."""
    out = _payload("residuals", name, value)
    edges, counts = _need("residuals", name, out["data"], "bin_edges", "bin_counts")
    if len(edges) != len(counts) + 1:
        raise ValueError(f"log_residuals({name!r}): bin_edges must have one more entry than bin_counts")
    _numbers(f"log_residuals({name!r})", [edges, counts])
    return out
