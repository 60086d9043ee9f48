"""A Faust table whose changelog partition is named explicitly, not taken from "the current event".

Faust writes a table change to the changelog partition of the event being
processed.  With ``stream.take_events`` a batch mixes partitions and the current
event is just the last one, so a run's state could land in another run's
partition -- and after a rebalance the worker owning the run would not recover
it.  Here every write happens inside ``routed_to(partition)``, the source
partition of the run being written, so a run's state always lives in the
changelog partition that Faust assigns together with that run's topic partitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from faust.tables.table import Table

__all__ = ["RoutedTable", "routed_to"]

_partition: ContextVar[int] = ContextVar("fleetlog_changelog_partition")


@contextlib.contextmanager
def routed_to(partition: int) -> Iterator[None]:
    """Table writes in this block go to changelog partition ``partition``."""
    token = _partition.set(partition)
    try:
        yield
    finally:
        _partition.reset(token)


class RoutedTable(Table):
    """``faust.Table`` that refuses writes whose partition was not named with ``routed_to``."""

    def partition_for_key(self, key: Any) -> int:
        try:
            return _partition.get()
        except LookupError:
            raise RuntimeError(f"table {self.name!r} written outside routed_to(partition)") from None
