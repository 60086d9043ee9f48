"""``Workspace``: Azure's top-level container, here a fleetlog project and the settings to reach it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleetlog.config import Settings

__all__ = ["Workspace"]

_LOCAL = "local"
_CONFIG_NAMES = ("config.json", os.path.join(".azureml", "config.json"))


def _find_config(path: str | os.PathLike | None, file_name: str | None) -> Path | None:
    """Azure's search: ``path`` (a file, or a folder) else the current folder and its parents,
    each for ``config.json`` then ``.azureml/config.json``.  None when there is none."""
    names = (file_name, os.path.join(".azureml", file_name)) if file_name else _CONFIG_NAMES
    if path is not None and Path(path).is_file():
        return Path(path)
    start = Path(path) if path is not None else Path.cwd()
    folders = [start] if path is not None else [start, *start.resolve().parents]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


class Workspace:
    """A workspace: ``name`` is the fleetlog project its experiments log to.

    ``subscription_id``, ``resource_group`` and ``location`` are kept as strings for code
    that prints them; fleetlog itself reaches Kafka and the store through ``settings``
    (``FLEETLOG_*`` variables, as for the native API).
    """

    def __init__(
        self,
        subscription_id: str = _LOCAL,
        resource_group: str = _LOCAL,
        workspace_name: str = "default",
        auth: Any = None,
        _location: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        if not isinstance(workspace_name, str) or not workspace_name:
            raise ValueError(f"Workspace needs a non-empty workspace_name, got {workspace_name!r}")
        self.subscription_id = str(subscription_id)
        self.resource_group = str(resource_group)
        self.name = workspace_name
        self.location = str(_location or _LOCAL)
        self.settings = settings or Settings.from_env()

    def __repr__(self) -> str:
        return (
            f"Workspace.create(name={self.name!r}, subscription_id={self.subscription_id!r}, "
            f"resource_group={self.resource_group!r})"
        )

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> Workspace:
        """The workspace a ``config.json`` names (Azure's search), else the local workspace.

        A ``path`` that names no config file is an error (it was asked for on purpose).
        """
        found = _find_config(path, _file_name)
        if found is None:
            if path is not None:
                raise FileNotFoundError(f"Workspace.from_config: no config.json at or under {str(path)!r}")
            return cls.local(settings=settings)
        try:
            config = json.loads(found.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"Workspace.from_config: {str(found)!r} is not a readable JSON object ({exc})") from None
        if not isinstance(config, dict):
            raise ValueError(f"Workspace.from_config: {str(found)!r} must hold a JSON object")
        return cls(
            subscription_id=str(config.get("subscription_id", _LOCAL)),
            resource_group=str(config.get("resource_group", _LOCAL)),
            workspace_name=str(config.get("workspace_name", "default")),
            _location=config.get("location"),
            settings=settings,
        )

    @classmethod
    def local(cls, *, settings: Settings | None = None) -> Workspace:
        """The local workspace: project ``default``, the native API's."""
        return cls(settings=settings)

    @classmethod
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        **_: Any,
    ) -> Workspace:
        """The workspace ``name`` (nothing to look up: a project exists once something logs to it)."""
        return cls(subscription_id or _LOCAL, resource_group or _LOCAL, name, _location=location)

    def get_details(self) -> dict[str, str]:
        return {
            "name": self.name,
            "location": self.location,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
        }

    def write_config(self, path: str | os.PathLike | None = None, file_name: str | None = None) -> Path:
        """Write ``.azureml/config.json`` under ``path`` (the current folder), as Azure does."""
        folder = Path(path or ".") / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (file_name or "config.json")
        body = {"subscription_id": self.subscription_id, "resource_group": self.resource_group}
        target.write_text(json.dumps(body | {"workspace_name": self.name}, indent=2))
        return target
