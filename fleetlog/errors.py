"""fleetlog's exceptions: the whole tree, drawn in this one place.

    FleetlogError                 root: catch this to catch everything fleetlog raises
    ├── ConfigError               a setting is wrong; the message names the variable or flag
    │                             (also a ValueError)
    ├── InvalidEvent              bytes that are not a valid event; ``reason`` says why (also a
    │                             ValueError). Stages dead-letter such a message, never retry it
    ├── StoreError                ClickHouse failed; ``retriable`` says whether to retry
    │   ├── StoreUnavailable      the store cannot be reached (retriable)
    │   ├── DataRejected          (fleetlog.store.client) the rows are refused and always will be:
    │   │                         they go to ``dead_letters``
    │   └── SinkBackpressure      (fleetlog.sinks.base) the store cannot take a batch now; read it
    │                             again in ``retry_after_seconds``
    ├── RunNotFound               no run with that id in the store (also a LookupError)
    ├── ModelNotFound             (fleetlog.models) no such model or version (also a LookupError)
    ├── ModelRegistrationPending  (fleetlog.models) sent, not numbered by the sink yet (retriable)
    └── RunFailed                 (fleetlog.script_run) a submitted script exited with an error

Every class is defined where it is raised, but importable from here when it belongs to the
base (this module, :mod:`fleetlog.events`, :mod:`fleetlog.config`), so that catching one never
imports a heavy stage. ``retriable`` is the one flag a caller needs: ``True`` means the same
call may succeed later.

Argument errors at the SDK call site are plain ``TypeError``/``ValueError`` so that they read
like any Python API's.

This module imports nothing of fleetlog's: every other module may import it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "FleetlogError", "InvalidEvent", "RunNotFound", "StoreError", "StoreUnavailable"]


class FleetlogError(Exception):
    """Root of fleetlog's own errors."""

    retriable: bool = False


class ConfigError(FleetlogError, ValueError):
    """A setting cannot work; the message names the variable or flag."""


class InvalidEvent(FleetlogError, ValueError):
    """The one error decoding untrusted bytes can raise; ``reason`` says why.

    A ``ValueError`` too, so code written before it joined the tree still catches it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
