"""``ScriptRunConfig``: Azure's description of a script run, turned into fleetlog's own.

It checks what it is given where it is given (a remote ``compute_target`` raises at
construction, as a conda setting raises where it is set) and :meth:`ScriptRunConfig.native`
makes the :class:`fleetlog.ScriptRunConfig` that ``Experiment.submit`` runs.
"""

from __future__ import annotations

import os
from typing import Any

from fleetlog.azureml._unsupported import NotSupportedHere
from fleetlog.azureml.core.environment import Environment
from fleetlog.azureml.core.runconfig import PyTorchConfiguration, RunConfiguration, check_target
from fleetlog.script_run import ScriptRunConfig as NativeScriptRunConfig

__all__ = ["ScriptRunConfig"]


class ScriptRunConfig:
    """``script`` in ``source_directory`` with ``arguments``, run locally by the Python ``run_config`` names."""

    def __init__(
        self,
        source_directory: str | os.PathLike,
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Environment | None = None,
        distributed_job_config: PyTorchConfiguration | None = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = None,
        command: Any = None,
        docker_runtime_config: Any = None,
    ) -> None:
        if command is not None:
            raise NotSupportedHere("ScriptRunConfig(command=...)", "give script= and arguments= instead")
        if resume_from is not None:
            raise NotSupportedHere("ScriptRunConfig(resume_from=...)", "resume with experiment.start_logging(run_id=)")
        if docker_runtime_config is not None:
            raise NotSupportedHere("ScriptRunConfig(docker_runtime_config=...)", "scripts run locally, not in Docker")
        if run_config is not None and not isinstance(run_config, RunConfiguration):
            raise TypeError(f"run_config must be a RunConfiguration, got {type(run_config).__name__}")
        if distributed_job_config is not None and not isinstance(distributed_job_config, PyTorchConfiguration):
            raise NotSupportedHere(
                f"distributed_job_config={type(distributed_job_config).__name__}", "launch the ranks with torchrun"
            )
        self.source_directory = os.fspath(source_directory)
        self.run_config = run_config or RunConfiguration()
        self.script = script or self.run_config.script
        self.arguments = list(arguments if arguments is not None else self.run_config.arguments)
        if compute_target is not None:
            self.run_config.target = check_target(compute_target)
        if environment is not None:
            self.run_config.environment = environment
        self.max_run_duration_seconds = max_run_duration_seconds
        self.native()  # a missing script raises here, where the config was written

    def native(self) -> NativeScriptRunConfig:
        """fleetlog's own config: the same script, arguments, environment variables and interpreter."""
        env = self.run_config.environment
        return NativeScriptRunConfig(
            source_directory=self.source_directory,
            script=self.script or "",
            arguments=tuple(str(a) for a in self.arguments),
            environment={str(k): str(v) for k, v in env.environment_variables.items()} or None,
            python=env.python.executable(),
        )
