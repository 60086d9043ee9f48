"""``RunConfiguration`` and ``PyTorchConfiguration``: how ``ScriptRunConfig`` runs a script.

Only local runs exist here: ``target`` is ``local``, the environment is a Python you
manage, one process.  Anything else raises :class:`~fleetlog.azureml.NotSupportedHere`.
"""

from __future__ import annotations

from typing import Any

from fleetlog.azureml._unsupported import NotSupportedHere
from fleetlog.azureml.core.environment import Environment

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "PyTorchConfiguration", "RunConfiguration", "check_target"]

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"
LOCAL = "local"


def check_target(target: Any) -> str:
    """``'local'`` (or a compute object named so, or nothing); any other compute target raises."""
    name = LOCAL if target is None else getattr(target, "name", target)
    if name != LOCAL:
        raise NotSupportedHere(
            f"compute_target={name!r}", "fleetlog runs scripts locally: use compute_target='local' (or leave it out)"
        )
    return LOCAL


class RunConfiguration:
    """Azure's run configuration: ``environment`` (an :class:`Environment`), ``target`` (local), and ``framework``."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list[str] | None = None,
        framework: str = "Python",
        communicator: str = "None",
        conda_dependencies: Any = None,
        _history_enabled: Any = None,
        _path: Any = None,
        _name: Any = None,
        command: Any = None,
    ) -> None:
        if conda_dependencies is not None:
            raise NotSupportedHere("RunConfiguration(conda_dependencies=...)", "install the packages yourself")
        if command is not None:
            raise NotSupportedHere("RunConfiguration(command=...)", "give ScriptRunConfig a script= and arguments=")
        self.script = script
        self.arguments = list(arguments or [])
        self.environment = Environment()
        self.target = LOCAL
        self.node_count = 1
        self.auto_prepare_environment = False
        self.framework = framework
        self.communicator = communicator

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "target":
            value = check_target(value)
        elif name == "framework" and value != "Python":
            raise NotSupportedHere(f"framework={value!r}", "fleetlog runs Python scripts")
        elif name == "communicator" and value not in ("None", None):
            raise NotSupportedHere(f"communicator={value!r}", "launch ranks with torchrun; they log into one run")
        elif name == "node_count" and value != 1:
            raise NotSupportedHere(f"node_count={value!r}", "one node: launch ranks with torchrun instead")
        elif name == "auto_prepare_environment" and value:
            raise NotSupportedHere("auto_prepare_environment=True", "install the packages yourself")
        elif name == "environment" and not isinstance(value, Environment):
            raise TypeError(f"run_config.environment must be an Environment, got {type(value).__name__}")
        super().__setattr__(name, value)


class PyTorchConfiguration:
    """A distributed job's shape; one process on one node runs here (more: launch torchrun yourself)."""

    def __init__(
        self, communication_backend: str = "Nccl", process_count: int | None = None, node_count: int = 1
    ) -> None:
        if node_count != 1 or (process_count or 1) != 1:
            raise NotSupportedHere(
                f"PyTorchConfiguration(process_count={process_count}, node_count={node_count})",
                "start the ranks with torchrun; every rank logs into one fleetlog run",
            )
        self.communication_backend = communication_backend
        self.process_count = process_count
        self.node_count = node_count
