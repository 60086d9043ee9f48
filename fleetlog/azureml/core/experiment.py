"""``Experiment(workspace=ws, name=...)``: fleetlog's experiment in the workspace's project."""

from __future__ import annotations

import os
from typing import Any

from fleetlog import runs
from fleetlog.azureml.core.script_run_config import ScriptRunConfig
from fleetlog.azureml.core.workspace import Workspace

__all__ = ["Experiment"]


class Experiment(runs.Experiment):
    """Azure's constructor over :class:`fleetlog.Experiment`: the workspace names the project and the settings."""

    def __init__(self, workspace: Workspace, name: str, **_azure_only: Any) -> None:
        if not isinstance(workspace, Workspace):
            raise TypeError(
                f"Experiment(workspace=...) needs a Workspace (Workspace.from_config()), got {type(workspace).__name__}"
            )
        super().__init__(name, project=workspace.name, settings=workspace.settings)
        self.workspace = workspace

    def start_logging(
        self, *args: Any, outputs: str | None = None, snapshot_directory: Any = None, **kwargs: Any
    ) -> Any:
        """Start a run; ``outputs`` names the folder kept with it at ``complete()`` (``./outputs``, made here).

        ``snapshot_directory`` is accepted and ignored: fleetlog keeps no code snapshots.
        """
        if args:
            raise TypeError("start_logging takes keyword arguments only (display_name=..., outputs=...)")
        run = super().start_logging(**kwargs)
        if outputs is not None:
            run.outputs_dir = outputs
        if run.outputs_dir and run.rank == 0:
            os.makedirs(run.outputs_dir, exist_ok=True)  # Azure makes it: notebooks write into it at once
        return run

    def submit(self, config: Any, tags: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Run a ``ScriptRunConfig`` locally as a new run; ``run.wait_for_completion()`` waits for it."""
        native = config.native() if isinstance(config, ScriptRunConfig) else config
        run = super().submit(native, show_output=bool(kwargs.get("show_output", False)))
        if tags:
            run.set_tags(tags)
        return run
