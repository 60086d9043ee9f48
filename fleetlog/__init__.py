"""fleetlog: record what ML training runs log, query it in real time.

run = fleetlog.Experiment("mnist").start_logging()
run.log("loss", 0.25)
run.complete()
"""

from fleetlog.config import Settings
from fleetlog.errors import (
    ConfigError,
    FleetlogError,
    InvalidEvent,
    RunNotFound,
    StoreError,
    StoreUnavailable,
)
from fleetlog.producers import RunStatus
from fleetlog.producers._logs import LoggingHandler
from fleetlog.runs import Experiment, Run
from fleetlog.script_run import RunFailed, ScriptRunConfig

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Experiment",
    "FleetlogError",
    "InvalidEvent",
    "LoggingHandler",
    "Run",
    "RunFailed",
    "RunNotFound",
    "RunStatus",
    "ScriptRunConfig",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "__version__",
]
