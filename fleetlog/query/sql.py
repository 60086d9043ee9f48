"""SQL building: every value bound server-side (``{name:Type}``), never pasted into the text.

``sql()`` is the public escape hatch; the helpers build the filters the other readers
share: lists of values, params/tags matches, and a stored key-value's type restored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetlog.config import Settings
from fleetlog.events.values import from_text
from fleetlog.query.client import df, reading

__all__ = ["as_list", "key_value_filter", "param_text", "sql", "typed"]


def sql(
    query: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    output: str = "pandas",
    settings: Settings | None = None,
) -> Any:
    """Run a query; bind values with ``{name:Type}`` placeholders (bound server-side, never pasted).

    ``sql("SELECT * FROM runs FINAL WHERE experiment = {e:String}", {"e": "mnist"})`` returns a
    pandas DataFrame; ``output="arrow"`` a ``pyarrow.Table``, ``output="polars"`` a polars
    DataFrame (``pip install polars``).
    """
    if output == "pandas":
        return df(settings, query, parameters)
    if output not in ("arrow", "polars"):
        raise ValueError(f"output must be 'pandas', 'arrow' or 'polars', not {output!r}")
    settings = settings or Settings.from_env()
    with reading(settings) as reader:
        table = reader.query_arrow(query, parameters=dict(parameters or {}), use_strings=True)
    if output == "arrow":
        return table
    try:
        import polars
    except ImportError:
        raise ImportError("output='polars' needs polars: pip install polars") from None
    return polars.from_arrow(table)


def as_list(value: str | Iterable[str] | None) -> list[str] | None:
    """One value or many as a list of strings; None stays None (no filter)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def param_text(value: Any) -> str:
    """A filter value as the sink stores it: ``str(value)``, booleans lower-case."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def key_value_filter(table: str, items: Mapping[str, Any], prefix: str, params: dict[str, Any]) -> list[str]:
    """``run_id IN (...)`` clauses for params/tags filters; a ``None`` value only asks that the key exist."""
    clauses = []
    for i, (key, value) in enumerate(items.items()):
        params[f"{prefix}k{i}"] = str(key)
        cond = f"key = {{{prefix}k{i}:String}}"
        if value is None:
            pass
        elif isinstance(value, (list, tuple)):
            params[f"{prefix}v{i}"] = [param_text(v) for v in value]
            cond += f" AND value IN {{{prefix}v{i}:Array(String)}}"
        else:
            params[f"{prefix}v{i}"] = param_text(value)
            cond += f" AND value = {{{prefix}v{i}:String}}"
        clauses.append(f"run_id IN (SELECT run_id FROM {table} FINAL WHERE {cond})")
    return clauses


def typed(value: str, kind: str) -> Any:
    """A stored param/tag/property value as the type it was logged with (the sink's rule, read back)."""
    return from_text(value, kind)
