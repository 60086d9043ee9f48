"""fleetlog's exceptions, drawn in one place.

    FleetlogError                 root: catch this to catch everything fleetlog raises
    ├── ConfigError               a setting is wrong; fix the environment or argument
    ├── StoreError                ClickHouse failed; ``retriable`` says whether to retry
    │   └── StoreUnavailable      the store cannot be reached (retriable)
    ├── RunNotFound               no run with that id in the store
    └── InvalidEvent              (fleetlog.events) undecodable bytes; also a ValueError

Argument errors at the SDK call site are plain ``TypeError``/``ValueError`` so
that they read like any Python API's.
"""

from __future__ import annotations

from fleetlog.events import InvalidEvent

__all__ = ["ConfigError", "FleetlogError", "InvalidEvent", "RunNotFound", "StoreError", "StoreUnavailable"]


class FleetlogError(Exception):
    """Root of fleetlog's own errors."""

    retriable: bool = False


class ConfigError(FleetlogError, ValueError):
    """A setting cannot work; the message names the variable or flag."""


class StoreError(FleetlogError):
    """ClickHouse refused or failed a statement."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class StoreUnavailable(StoreError):
    """The store is not reachable; the message says how to start it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class RunNotFound(FleetlogError, LookupError):
    """No run with the given id has reached the store."""
