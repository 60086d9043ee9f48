"""The public ``Run`` and ``Experiment``: the SDK's writers plus reading back from the store.

Producers only write; this facade adds what Azure ML's ``Run`` also reads
(``get_metrics``, ``get_details``, ``get_children``...), resuming runs, script
submission and ``Run.get_context()``.  The reading itself is
:mod:`fleetlog.query.handle`'s (one read side, against the embedded store's endpoint
and a ClickHouse server alike); what this module adds is read-your-writes: a run
this handle ended reads as ended though the store lags behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from fleetlog.config import Settings
from fleetlog.errors import FleetlogError, RunNotFound, StoreUnavailable
from fleetlog.events import RunStatus
from fleetlog.producers import experiment as _experiment
from fleetlog.producers import run as _run
from fleetlog.query import handle
from fleetlog.ui.notebook import NotebookViews

__all__ = ["Experiment", "Run"]

log = logging.getLogger("fleetlog")

_CONTEXT: dict[str, Run] = {}


class Run(NotebookViews, _run.Run):
    """A run you log to and read back from (Azure ML's ``Run``); in Jupyter, a live card."""

    _process: Any = None

    def __init__(self, experiment: Any, run_id: str | None = None, **wiring: Any) -> None:
        """``Run(experiment, run_id)`` attaches to a run in the store (Azure's constructor).

        The SDK itself wires new runs by keyword (``Experiment._open_run``); a new run is
        started with ``experiment.start_logging()``.
        """
        if wiring:
            super().__init__(experiment=experiment, **wiring)
            return
        if not isinstance(run_id, str) or not run_id:
            raise TypeError(
                "Run(experiment, run_id) needs the id of a run in the store; "
                "start a new one with experiment.start_logging() (or Run.get_context() in a script)"
            )
        rec = handle.run_record(run_id, experiment.settings)
        super().__init__(
            **experiment._wiring(run_id), display_name=str(rec["name"]), parent_id=str(rec["parent_run_id"])
        )
        experiment._register(self)
        self.status = str(rec["status"])
        self.start_time = rec["start_time"].timestamp()

    @property
    def _settings(self) -> Settings:
        return self.experiment.settings

    # -- reading back ------------------------------------------------------------------
    def _store_record(self) -> dict[str, Any]:
        missing = f"run {self.id!r} has not reached the store yet (is the sink running? `fleetlog up`)"
        return handle.run_record(self.id, self._settings, missing=missing)

    def _ended_here(self) -> bool:
        """This handle ended the run (complete, fail, cancel, wait_for_completion): its own status is final."""
        return self.ended_here and self.status in RunStatus.TERMINAL

    def _own_record(self) -> dict[str, Any]:
        """What this handle knows of its run, in the store's column names (read-your-writes)."""
        source = self._stream.template.source
        return {
            "name": self.display_name,
            "description": self.description,
            "status": self.status,
            "start_time": pd.Timestamp(self.start_time, unit="s"),
            "end_time": pd.Timestamp(self.end_time, unit="s"),
            "experiment": self.experiment.name,
            "parent_run_id": self.parent_id,
            "host": source.host,
            "world_size": source.world_size,
            "error_type": self._error.get("type", ""),
            "error_message": self._error.get("message", ""),
            "error_traceback": self._error.get("traceback", ""),
        }

    def _status_record(self) -> dict[str, Any]:
        """The store's record, except that a run this handle ended reads as ended though the store lags.

        The sink writes the final status a flush interval or so after ``complete()`` returns;
        a script that asks right away must not see ``Running``.
        """
        try:
            rec = self._store_record()
        except (RunNotFound, StoreUnavailable):
            if not self._ended_here():
                raise
            return self._own_record()  # not there yet, or the store is restarting: this handle knows
        if self._ended_here() and rec["status"] not in RunStatus.TERMINAL:
            own = self._own_record()
            rec.update({k: own[k] for k in ("status", "end_time", "error_type", "error_message", "error_traceback")})
        return rec

    def get_status(self) -> str:
        """The status in the store, or this handle's own view: when the store has not seen the run yet,
        or lags behind what this handle did (``complete()``, ``fail()``, ``cancel()``, ``wait_for_completion()``)."""
        try:
            return str(self._status_record()["status"])
        except RunNotFound:
            return self.status

    def get_details(self) -> dict[str, Any]:
        """Azure's run details from the store, with this handle's final status if it ended the run."""
        rec = self._status_record()
        try:
            properties, tags = self.get_properties(), self.get_tags()
        except StoreUnavailable:
            if not self._ended_here():
                raise
            properties, tags = dict(self._properties), dict(self._tags)
        details = {
            "runId": self.id,
            "displayName": rec["name"],
            "description": rec.get("description", ""),
            "status": rec["status"],
            "startTimeUtc": rec["start_time"],
            "endTimeUtc": rec["end_time"],
            "experiment": rec["experiment"],
            "parentRunId": rec["parent_run_id"] or None,
            "host": rec["host"],
            "worldSize": int(rec["world_size"]),
            "properties": properties,
            "tags": tags,
        }
        if rec["error_type"] or rec["error_message"]:
            details["error"] = {
                "type": rec["error_type"],
                "message": rec["error_message"],
                "traceback": rec["error_traceback"],
            }
        return details

    def _key_values(self, table: str) -> dict[str, Any]:
        return handle.key_values(self.id, table, self._settings)

    def get_tags(self) -> dict[str, Any]:
        return self._key_values("run_tags")

    def get_properties(self) -> dict[str, Any]:
        return self._key_values("run_properties")

    def get_params(self) -> dict[str, Any]:
        return self._key_values("run_params")

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, rank: int = 0, *, include_system: bool = False
    ) -> dict[str, Any]:
        """Azure's shape: name -> value (one point or a string), list (a series), dict of columns (a table).

        What the script logged: fleetlog's own ``sys/...`` telemetry only with ``include_system=True``.
        ``recursive=True`` returns ``{run_id: metrics}`` for this run and all its descendants.
        """
        if recursive:
            runs = [self, *self._descendants()]
            return {r.id: r.get_metrics(name, rank=rank, include_system=include_system) for r in runs}
        return handle.run_metrics(self.id, self._settings, name=name, rank=rank, include_system=include_system)

    def get_portal_url(self) -> str:
        """The dashboard's page for this run (``fleetlog ui`` serves it; Azure's studio link)."""
        return f"{self._settings.ui.url}/#/run/{quote(self.id, safe='')}"

    def get_file_names(self) -> list[str]:
        return handle.file_names(self.id, self._settings)

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> Path:
        uri = handle.artifact_uri(self.id, name, self._settings)
        if uri is None:
            raise FileNotFoundError(f"run {self.id!r} has no file {name!r}; get_file_names() lists them")
        target = Path(output_file_path or Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        self._artifacts.download(uri, target)
        return target

    def register_model(
        self,
        model_name: str,
        model_path: str | os.PathLike,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Any:
        """Register ``model_path`` (a file or folder) as the next version of ``model_name``; a ``Model``.

        The version is numbered by the sink, exactly once across processes (:mod:`fleetlog.models`).
        """
        from fleetlog.models import register

        labels = {"tags": tags, "properties": properties, "description": description}
        return register(self, self._settings, model_name, model_path, **labels, **options)

    def get_children(self) -> list[Run]:
        return [type(self).get(rid, settings=self._settings) for rid in handle.child_ids(self.id, self._settings)]

    def _descendants(self) -> list[Run]:
        out = []
        for child in self.get_children():
            out += [child, *child._descendants()]
        return out

    # -- submitted scripts -------------------------------------------------------------
    def wait_for_completion(
        self, show_output: bool = False, timeout: float | None = None, raise_on_error: bool = True
    ) -> dict[str, Any]:
        """Block until a submitted script ends; Completed/Failed from its exit code (Azure's behaviour)."""
        if self._process is None:
            raise FleetlogError("wait_for_completion() is for runs started by Experiment.submit()")
        return self._process.wait(show_output=show_output, timeout=timeout, raise_on_error=raise_on_error)

    # -- finding runs ------------------------------------------------------------------
    @classmethod
    def get(cls, run_id: str, *, settings: Settings | None = None) -> Run:
        """A handle on a run in the store: read it, or log more to it."""
        settings = settings or Settings.from_env()
        rec = handle.run_record(run_id, settings)
        exp = Experiment(str(rec["experiment"]), project=str(rec["project"]), settings=settings)
        run = exp._open_run(run_id=run_id, display_name=str(rec["name"]), parent_id=str(rec["parent_run_id"]))
        run.status = str(rec["status"])
        run.start_time = rec["start_time"].timestamp()
        return run

    @classmethod
    def get_context(cls) -> Run:
        """Inside a submitted script: the submitting run.  Elsewhere: an offline run that spools to disk."""
        run_id = os.environ.get("FLEETLOG_RUN_ID", "")
        if run_id in _CONTEXT:
            return _CONTEXT[run_id]
        if run_id and os.environ.get("FLEETLOG_SUBMITTED") == "1":
            settings = Settings.from_env()
            exp = Experiment(
                os.environ.get("FLEETLOG_EXPERIMENT", "default"),
                project=os.environ.get("FLEETLOG_PROJECT", "default"),
                settings=settings,
            )
            run = exp._open_run(run_id=run_id, display_name=os.environ.get("FLEETLOG_RUN_NAME"))
            run.status = RunStatus.RUNNING
            run.start_time = float(os.environ.get("FLEETLOG_RUN_START", "0") or 0)
        else:
            settings = Settings.from_env(mode="offline")
            name = os.environ.get("FLEETLOG_EXPERIMENT") or "offline"
            run = Experiment(name, settings=settings).start_logging(run_id=run_id or None)
            log.info(
                "fleetlog: no submitted run; logging offline to %s (send with `fleetlog sync`)", settings.spool_dir
            )
        _CONTEXT[run_id] = run
        return run


class Experiment(_experiment.Experiment):
    """Runs of one experiment: start, resume, submit and list them."""

    run_class = Run

    def start_logging(self, *, run_id: str | None = None, **kwargs: Any) -> Run:
        """Start a run, or resume ``run_id`` if the store knows it (steps continue after the last)."""
        self._resume_id = run_id
        return super().start_logging(run_id=run_id, **kwargs)  # type: ignore[return-value]

    def _before_start(self, run: _run.Run) -> None:
        if not getattr(self, "_resume_id", None):
            return
        try:
            found = handle.last_steps(run.id, run.rank, self.settings)
        except Exception as exc:  # the store being down must not stop training
            log.warning("fleetlog could not look up run %r to resume it (%s); steps restart at 0", run.id, exc)
            return
        if found is None:
            return
        start, steps = found
        run._metrics.resume_steps(steps)
        if start is not None:
            run._resumed_start = start.timestamp()  # type: ignore[attr-defined]

    def get_runs(self) -> list[Run]:
        """This experiment's runs in the store, newest first."""
        ids = handle.experiment_run_ids(self.name, self.project, self.settings)
        return [Run.get(rid, settings=self.settings) for rid in ids]

    def submit(self, config: Any, show_output: bool = False) -> Run:
        """Run a ``ScriptRunConfig`` as a child process logging into a new run."""
        from fleetlog.script_run import launch

        return launch(self, config, show_output=show_output)
