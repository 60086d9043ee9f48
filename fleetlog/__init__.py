"""fleetlog: record what ML training runs log, query it in real time.

run = fleetlog.Experiment("mnist").start_logging()
run.log("loss", 0.25)
run.complete()

The names below load on first use (module ``__getattr__``), so that importing a piece of
the base -- ``fleetlog.events``, ``fleetlog.config``, ``fleetlog.errors`` -- costs only that
piece: a sink or a processor never pays for the SDK's Kafka client or the read side's pandas.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# A library never prints on its own: without logging configured, fleetlog's records go
# nowhere (``logging.basicConfig()`` shows them).
logging.getLogger("fleetlog").addHandler(logging.NullHandler())

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "ConfigError": "fleetlog.errors",
    "FleetlogError": "fleetlog.errors",
    "InvalidEvent": "fleetlog.errors",
    "RunNotFound": "fleetlog.errors",
    "StoreError": "fleetlog.errors",
    "StoreUnavailable": "fleetlog.errors",
    "RunStatus": "fleetlog.events",
    "Settings": "fleetlog.config",
    "LoggingHandler": "fleetlog.producers._logs",
    "Experiment": "fleetlog.runs",
    "Run": "fleetlog.runs",
    "RunFailed": "fleetlog.script_run",
    "ScriptRunConfig": "fleetlog.script_run",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from fleetlog.config import Settings as Settings
    from fleetlog.errors import ConfigError as ConfigError
    from fleetlog.errors import FleetlogError as FleetlogError
    from fleetlog.errors import InvalidEvent as InvalidEvent
    from fleetlog.errors import RunNotFound as RunNotFound
    from fleetlog.errors import StoreError as StoreError
    from fleetlog.errors import StoreUnavailable as StoreUnavailable
    from fleetlog.events import RunStatus as RunStatus
    from fleetlog.producers._logs import LoggingHandler as LoggingHandler
    from fleetlog.runs import Experiment as Experiment
    from fleetlog.runs import Run as Run
    from fleetlog.script_run import RunFailed as RunFailed
    from fleetlog.script_run import ScriptRunConfig as ScriptRunConfig


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute: no second lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
