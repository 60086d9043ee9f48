"""Documented size limits, checked where the user calls so nothing is silently cut.

The sink enforces the same bounds against hostile clients (by truncating or
dead-lettering); the SDK raises first, with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

__all__ = ["MAX_KEY_BYTES", "MAX_NESTING", "MAX_VALUE_BYTES", "check_event_size", "check_key_values", "check_text"]

MAX_KEY_BYTES = 1024  # metric, tag, param and property names
MAX_VALUE_BYTES = 1 << 20  # one tag/param/property value, a run name or description
MAX_NESTING = 32  # depth of nested params


def check_text(what: str, value: str, limit: int = MAX_VALUE_BYTES) -> str:
    if len(value) > limit // 4 and len(value.encode()) > limit:
        raise ValueError(f"{what} is {len(value.encode()):,} bytes; the limit is {limit:,} (upload_file for more)")
    return value


def check_key_values(what: str, items: Mapping[str, Any]) -> None:
    for key, value in items.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{what} names must be non-empty str, got {key!r}")
        check_text(f"{what} name {key[:60]!r}...", key, MAX_KEY_BYTES)
        if isinstance(value, str):
            check_text(f"{what} {key[:60]!r}", value)


def check_event_size(what: str, body: Any, limit: int) -> None:
    """One event travels as one Kafka message: refuse what could never be sent."""
    size = len(msgpack.packb(body, use_bin_type=True))
    if size > limit:
        raise ValueError(
            f"{what} encodes to {size:,} bytes, over the {limit:,}-byte message limit "
            "(FLEETLOG_MAX_MESSAGE_BYTES); split it, or save it to a file and upload_file it"
        )
