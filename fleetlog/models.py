"""The model registry: ``run.register_model(...)`` and Azure ML's ``Model``.

    model = run.register_model(model_name="sklearn-mnist", model_path="outputs/model.pkl", tags={"area": "mnist"})
    model.name, model.version, model.url, model.run_id        # 'sklearn-mnist', 3, 'file:///.../models/...', run id
    Model(ws, "sklearn-mnist")                                # the latest version; Model(ws, name, version=2)
    Model.list(ws, tags=[["area", "mnist"]])                  # every version, newest first per name
    model.download("here")                                    # 'here/model.pkl'

Versions are 1, 2, 3... per name, each given exactly once however many processes register the
same name at the same moment.  No process can number them -- they share no lock, and the store
lags behind what each one sent -- so the sink does: every registration of a name is keyed by the
name, so all of them sit on one Kafka partition, in order, and one sink owns that partition at a
time and numbers them at insert time, the same way on a replay (:mod:`fleetlog.sinks._models`).
``register_model`` copies the files into the artifact store, sends the event, flushes it and
waits (at most ``timeout_seconds``) for the number to appear in the store; past that it raises
:class:`ModelRegistrationPending` -- the registration is not lost, only not numbered yet.

``ws`` is anything that names a store: ``None`` (the environment's settings), a
:class:`~fleetlog.config.Settings`, or an object with a ``settings`` attribute (the drop-in's
``fleetlog.azureml.core.Workspace``).
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec

from fleetlog.config import Settings
from fleetlog.errors import FleetlogError, StoreUnavailable
from fleetlog.events.models import check_model_name
from fleetlog.producers._models import send_registration
from fleetlog.query.models import models as _models
from fleetlog.query.models import registration as _registration

if TYPE_CHECKING:
    from fleetlog.producers.run import Run

__all__ = ["REGISTER_TIMEOUT_SECONDS", "Model", "ModelNotFound", "ModelRegistrationPending", "register"]

REGISTER_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.1
_REGISTRATION = re.compile(r"[0-9a-f]{32}")  # producers/_models.py: uuid4().hex


class ModelNotFound(FleetlogError, LookupError):
    """No model of that name (and version) in the store."""


class ModelRegistrationPending(FleetlogError):
    """The registration was sent but the sink has not numbered it yet (is `fleetlog up` running?).

    Retriable: ``Model.list(ws, name)`` shows it once the sink stores it.
    """

    retriable = True

    def __init__(self, message: str, *, registration_id: str) -> None:
        super().__init__(message)
        self.registration_id = registration_id


def settings_of(workspace: Any) -> Settings:
    """The store a workspace argument names (see the module docstring)."""
    if workspace is None:
        return Settings.from_env()
    if isinstance(workspace, Settings):
        return workspace
    found = getattr(workspace, "settings", None)
    if isinstance(found, Settings):
        return found
    raise TypeError(f"workspace must be None, a fleetlog Settings or a Workspace, got {type(workspace).__name__}")


class Model:
    """One registered version of a model (Azure ML's ``Model``)."""

    def __init__(
        self,
        workspace: Any = None,
        name: str | None = None,
        id: str | None = None,  # Azure's parameter name
        tags: Iterable[Any] | Mapping[str, Any] | None = None,
        properties: Iterable[Any] | Mapping[str, Any] | None = None,
        version: int | None = None,
        run_id: str | None = None,
        **unsupported: Any,
    ) -> None:
        """The latest version of ``name`` (or ``version``; ``id`` is ``"name:version"``) in the store."""
        if unsupported:
            raise NotImplementedError(
                f"Model() does not support {sorted(unsupported)} here"
                " (only name, id, tags, properties, version, run_id)"
            )
        if id is not None:
            name, _, number = id.partition(":")
            version = int(number) if number else version
        if name is None:
            raise ValueError("Model() needs a name (or an id 'name:version')")
        self.workspace = workspace
        settings = settings_of(workspace)
        frame = _models(check_model_name(name), tags, properties=properties, run_id=run_id, settings=settings)
        if version is not None:
            frame = frame[frame["version"] == int(version)]
        if frame.empty:
            which = f"version {version} of " if version is not None else ""
            raise ModelNotFound(
                f"no {which}model {name!r} in the store; Model.list(ws) lists the registered ones "
                "(a model registered a moment ago is numbered by the sink: is `fleetlog up` running?)"
            )
        self._load(frame.iloc[0].to_dict(), settings)

    @classmethod
    def _of(cls, row: Mapping[str, Any], settings: Settings, workspace: Any = None) -> Model:
        model = cls.__new__(cls)
        model.workspace = workspace
        model._load(row, settings)
        return model

    def _load(self, row: Mapping[str, Any], settings: Settings) -> None:
        self._settings = settings
        self.name: str = str(row["name"])
        self.version: int = int(row["version"])
        self.url: str = str(row["url"])
        self.run_id: str = str(row["run_id"])
        self.experiment_name: str = str(row["experiment"])
        self.description: str = str(row["description"])
        self.tags: dict[str, str] = dict(row["tags"])
        self.properties: dict[str, str] = dict(row["properties"])
        self.created_time = row["ts"]
        self.size: int = int(row["size"])
        self._path = str(row["path"])
        self._registration = str(row["registration_id"])

    def _folder(self) -> str:
        """Where the files are, rebuilt from this store's artifact root as the SDK lays them out.

        The ``url`` stored with the row is never followed: it came through Kafka, and whoever can write
        events could point it anywhere (``file:///etc``, ``simplecache::...``).
        """
        if not _REGISTRATION.fullmatch(self._registration) or self._path in ("", ".", "..") or "/" in self._path:
            raise FleetlogError(f"model {self.id}'s stored row is malformed (registration id or path); not reading it")
        root = self._settings.sdk.artifacts_url.rstrip("/")
        return f"{root}/models/{check_model_name(self.name)}/{self._registration}"

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version}, run_id={self.run_id!r}, url={self.url!r})"

    @staticmethod
    def list(
        workspace: Any = None,
        name: str | None = None,
        tags: Iterable[Any] | Mapping[str, Any] | None = None,
        properties: Iterable[Any] | Mapping[str, Any] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[Model]:
        """Registered models (every version, newest first per name; ``latest``: one per name)."""
        settings = settings_of(workspace)
        frame = _models(name, tags, properties=properties, run_id=run_id, settings=settings)
        if latest:
            frame = frame.drop_duplicates("name")
        return [Model._of(row, settings, workspace) for row in frame.to_dict("records")]

    def download(self, target_dir: str | os.PathLike = ".", exist_ok: bool = False) -> str:
        """Copy the model's file or folder into ``target_dir``; the path of the copy (Azure's return value)."""
        folder = self._folder()
        target = Path(target_dir) / self._path
        if target.exists() and not exist_ok:
            raise FileExistsError(f"{str(target)!r} exists; pass exist_ok=True to overwrite it")
        fs, root = fsspec.core.url_to_fs(folder)
        root = root.rstrip("/")
        for path in sorted(fs.find(root)):
            rel = posixpath.relpath(path, root)
            if rel.startswith("../") or rel == "..":
                continue
            local = Path(target_dir) / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(local))
        if not target.exists():
            raise FileNotFoundError(
                f"model {self.id} has no files at {folder}: is FLEETLOG_ARTIFACTS_URL the fleet's artifact store?"
            )
        return str(target)


def register(
    run: Run,
    settings: Settings,
    model_name: str,
    model_path: str | os.PathLike,
    *,
    tags: Mapping[str, Any] | None = None,
    properties: Mapping[str, Any] | None = None,
    description: str | None = None,
    timeout_seconds: float = REGISTER_TIMEOUT_SECONDS,
) -> Model:
    """``run.register_model``: send the registration, then wait for the version the sink gives it."""
    reg = send_registration(run, model_name, model_path, tags=tags, properties=properties, description=description)
    pending = f"model {reg.name!r} was sent (registration {reg.registration_id}) but has no version yet"
    if settings.sdk.mode == "offline":
        raise ModelRegistrationPending(
            f"{pending}: offline runs spool to disk, so the sink numbers it after `fleetlog sync`",
            registration_id=reg.registration_id,
        )
    deadline = time.monotonic() + timeout_seconds
    run.flush(timeout_seconds)
    while True:
        try:
            row = _registration(reg.registration_id, settings)
        except StoreUnavailable:
            row = None
        if row is not None:
            return Model._of(row, settings)
        if time.monotonic() >= deadline:
            raise ModelRegistrationPending(
                f"{pending} after {timeout_seconds:g}s: is the sink running (`fleetlog up`)? "
                f"Model.list(ws, name={reg.name!r}) shows it once stored",
                registration_id=reg.registration_id,
            )
        time.sleep(_POLL_SECONDS)
