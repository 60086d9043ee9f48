"""Param, tag and property values as the store keeps them: text plus the name of the type logged.

The sink writes ``(text, kind)`` pairs with :func:`to_text` and the read side turns them
back with :func:`from_text`; one module holds both directions so they cannot drift.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VALUE_KINDS", "from_text", "to_text"]

# What a value may be logged as; ``deleted`` marks a removed tag (no value).
VALUE_KINDS = ("null", "str", "int", "float", "bool")


def to_text(value: Any) -> tuple[str, str]:
    """``(text, kind)`` for a logged value; ``TypeError`` for anything but None, str, int, float and bool."""
    kind = "null" if value is None else type(value).__name__
    if kind not in VALUE_KINDS:
        raise TypeError(f"unsupported type {kind}")
    text = "" if value is None else (str(value).lower() if kind == "bool" else str(value))
    return text, kind


def from_text(text: str, kind: str) -> Any:
    """A stored value as the type it was logged with; text it cannot be read as stays text."""
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    if kind == "bool":
        return text == "true"
    if kind == "null":
        return None
    return text
