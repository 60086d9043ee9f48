"""Limits on untrusted bytes, and the checks every decoder shares.

Checked before anything else looks at a message.  Every stage recurses somewhere
(``json.dumps`` of a record's data, Arrow on nested lists, ``repr`` in an error
message), and Python's recursion limit is about 1,000 frames: a message nested
deeper than that would kill the stage that read it, and kill it again on every
restart at the same offset.  Real events nest a few levels (envelope -> body -> a
record's data); 64 leaves room for any structured payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import numpy as np

from fleetlog.errors import InvalidEvent

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "nested_deeper", "require"]

MAX_DEPTH = 64
# Kafka topics cap messages at a few MiB; this bound holds even where a topic's cap was raised.
MAX_MESSAGE_BYTES = 1 << 26
MAX_MAP_LEN = 1 << 20
MAX_NAMES = 1 << 20  # metric names in one batch; strings in one dictionary column
MAX_ROWS = 1 << 24  # rows (or points) in one message
MAX_COLUMNS = 1024

# The fixed little-endian dtypes of the binary columns.
IDX = np.dtype("<u4")
I32 = np.dtype("<i4")
I64 = np.dtype("<i8")
F64 = np.dtype("<f8")

_CONTAINERS = frozenset({list, dict})


def require(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``raw[name]`` if it is there and of ``kind`` (never a bool for an int), else ``InvalidEvent``."""
    if name not in raw:
        raise InvalidEvent(f"missing field {name!r}")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidEvent(f"field {name!r} has type {type(value).__name__}")
    return value


def nested_deeper(root: list | dict, limit: int) -> bool:
    """Whether ``root`` (level 1) nests lists and maps below level ``limit``; iterative, so any depth is safe.

    One pass per level over all of that level's children: gathering them (``chain``) and
    spotting containers among them (``map(type, ...)``) run in C, so a level of scalars --
    a list column, a table's cells -- costs no Python step per element.  msgpack yields
    exactly ``list`` and ``dict``, and map keys are never containers (``strict_map_key``).
    """
    lists, maps = ([root], []) if type(root) is list else ([], [root])
    for _ in range(limit):
        children = [*chain.from_iterable(lists), *chain.from_iterable(map(dict.values, maps))]
        if _CONTAINERS.isdisjoint(map(type, children)):
            return False
        lists = [x for x in children if type(x) is list]
        maps = [x for x in children if type(x) is dict]
    return True
