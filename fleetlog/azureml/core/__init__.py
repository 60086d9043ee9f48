"""``fleetlog.azureml.core``: what ``azureml.core`` exports for logging and local runs.

from fleetlog.azureml.core import Experiment, Workspace, Run   # was: from azureml.core import ...
"""

from __future__ import annotations

from fleetlog import __version__
from fleetlog.azureml._unsupported import NotSupportedHere
from fleetlog.azureml.core import environment, experiment, model, run, runconfig, script_run_config, workspace
from fleetlog.azureml.core.environment import Environment
from fleetlog.azureml.core.experiment import Experiment
from fleetlog.azureml.core.model import Model
from fleetlog.azureml.core.run import Run
from fleetlog.azureml.core.runconfig import RunConfiguration
from fleetlog.azureml.core.script_run_config import ScriptRunConfig
from fleetlog.azureml.core.workspace import Workspace

__all__ = [
    "VERSION",
    "Environment",
    "Experiment",
    "Model",
    "NotSupportedHere",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "Workspace",
    "environment",
    "experiment",
    "model",
    "run",
    "runconfig",
    "script_run_config",
    "workspace",
]

VERSION = __version__  # fleetlog's version: what notebooks print as the SDK version (parseable as one)
