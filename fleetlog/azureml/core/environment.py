"""``Environment``: which Python runs a submitted script.

On fleetlog a script runs locally in an interpreter you manage: this one, or the
``python.interpreter_path`` you give.  Azure's builds (conda, pip files, Docker images)
raise :class:`~fleetlog.azureml.NotSupportedHere` the moment they are asked for, so a
configuration never silently runs somewhere else than it says.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from fleetlog.azureml._unsupported import NotSupportedHere

__all__ = ["DockerSection", "Environment", "PythonSection"]

_MANAGE = "install the packages into a Python yourself and set python.interpreter_path to it"


class PythonSection:
    """``environment.python``: ``user_managed_dependencies`` (always True here) and ``interpreter_path``."""

    def __init__(self) -> None:
        self.interpreter_path: str = "python"  # Azure's default: the run's own Python (here: this one)
        self.user_managed_dependencies = True
        self.conda_dependencies_file: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "user_managed_dependencies" and value is not True:
            raise NotSupportedHere("python.user_managed_dependencies=False (a conda build)", _MANAGE)
        if name in ("conda_dependencies", "conda_dependencies_file") and value is not None:
            raise NotSupportedHere(f"python.{name}", _MANAGE)
        if name == "interpreter_path" and not isinstance(value, str | os.PathLike):
            raise TypeError(f"python.interpreter_path must be a path, got {type(value).__name__}")
        super().__setattr__(name, value)

    @property
    def conda_dependencies(self) -> None:
        return None

    @conda_dependencies.setter
    def conda_dependencies(self, value: Any) -> None:
        self.__setattr__("conda_dependencies", value)

    def executable(self) -> str:
        """The interpreter path resolved: ``python`` (Azure's default) is the one running fleetlog."""
        path = os.fspath(self.interpreter_path)
        if path in ("", "python"):
            return ""
        found = shutil.which(path) if os.sep not in path else (path if Path(path).is_file() else None)
        if not found:
            raise FileNotFoundError(f"python.interpreter_path {path!r} is not an executable file")
        return found


class DockerSection:
    """``environment.docker``: off, and it stays off (scripts run locally)."""

    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if (name == "enabled" and value) or (name != "enabled" and value is not None):
            raise NotSupportedHere(f"docker.{name}", "scripts run locally; run fleetlog inside your image instead")
        super().__setattr__(name, value)


class Environment:
    """A named environment: a Python you manage (``python.interpreter_path``) and ``environment_variables``."""

    def __init__(self, name: str = "fleetlog-local", **_: Any) -> None:
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, interpreter_path={self.python.interpreter_path!r})"

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        raise NotSupportedHere("Environment.from_conda_specification", _MANAGE)

    @staticmethod
    def from_pip_requirements(name: str, file_path: str, pip_version: str | None = None) -> Environment:
        raise NotSupportedHere("Environment.from_pip_requirements", _MANAGE)

    @staticmethod
    def from_docker_image(name: str, image: str, **_: Any) -> Environment:
        raise NotSupportedHere("Environment.from_docker_image", "run fleetlog inside that image instead")

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None) -> Environment:
        raise NotSupportedHere("Environment.get (registered environments)", "build an Environment(name) here")

    def register(self, workspace: Any) -> Environment:
        raise NotSupportedHere("Environment.register", "environments are not kept in the store; build one in code")
