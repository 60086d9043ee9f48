"""The public ``Run`` and ``Experiment``: the SDK's writers plus reading back from the store.

Producers only write; this facade adds what Azure ML's ``Run`` also reads
(``get_metrics``, ``get_details``, ``get_children``...), resuming runs, script
submission and ``Run.get_context()``.  Reads go through ``fleetlog.query``, so
they work against the embedded store's endpoint and a ClickHouse server alike.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fleetlog import query
from fleetlog.config import Settings, mask_url
from fleetlog.errors import FleetlogError, RunNotFound, StoreUnavailable
from fleetlog.producers import experiment as _experiment
from fleetlog.producers import run as _run

__all__ = ["Experiment", "Run"]

log = logging.getLogger("fleetlog")

_CONTEXT: dict[str, Run] = {}


def _sql(settings: Settings, text: str, **params: Any):
    return query.sql(text, params, settings=settings)


class Run(_run.Run):
    """A run you log to and read back from (Azure ML's ``Run``)."""

    _process: Any = None

    @property
    def _settings(self) -> Settings:
        return self.experiment.settings

    # -- reading back ------------------------------------------------------------------
    def _store_record(self) -> dict[str, Any]:
        df = _sql(self._settings, "SELECT * FROM runs FINAL WHERE run_id = {r:String}", r=self.id)
        if df.empty:
            raise RunNotFound(f"run {self.id!r} has not reached the store yet (is the sink running? `fleetlog up`)")
        return df.iloc[0].to_dict()

    def _ended_here(self) -> bool:
        """This handle ended the run (complete, fail, cancel, wait_for_completion): its own status is final."""
        return self.ended_here and self.status in _run.RunStatus.TERMINAL

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
        if self._ended_here() and rec["status"] not in _run.RunStatus.TERMINAL:
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
        df = _sql(
            self._settings, f"SELECT key, value, value_type FROM {table} FINAL WHERE run_id = {{r:String}}", r=self.id
        )
        return {k: _typed(v, t) for k, v, t in df.itertuples(index=False) if t != "deleted"}

    def get_tags(self) -> dict[str, Any]:
        return self._key_values("run_tags")

    def get_properties(self) -> dict[str, Any]:
        return self._key_values("run_properties")

    def get_params(self) -> dict[str, Any]:
        return self._key_values("run_params")

    def get_metrics(self, name: str | None = None, recursive: bool = False, rank: int = 0) -> dict[str, Any]:
        """Azure's shape: name -> value (one point), list (a series), dict of columns (a table).

        ``recursive=True`` returns ``{run_id: metrics}`` for this run and all its descendants.
        """
        if recursive:
            return {r.id: r.get_metrics(name, rank=rank) for r in [self, *self._descendants()]}
        s = self._settings
        out: dict[str, Any] = {}
        points = _sql(
            s,
            "SELECT metric, arrayMap(x -> x.2, arraySort(groupArray((step, value)))) AS v "
            "FROM metric_points WHERE run_id = {r:String} AND rank = {k:UInt32} "
            "AND ({n:String} = '' OR metric = {n:String}) GROUP BY metric",
            r=self.id,
            k=rank,
            n=name or "",
        )
        for metric, values in points.itertuples(index=False):
            values = [float(v) for v in values]
            out[metric] = values[0] if len(values) == 1 else values
        records = _sql(
            s,
            "SELECT name, type, data FROM run_records WHERE run_id = {r:String} "
            "AND ({n:String} = '' OR name = {n:String}) ORDER BY name, idx",
            r=self.id,
            n=name or "",
        )
        rows: dict[str, list[dict[str, Any]]] = {}
        for rec_name, kind, data in records.itertuples(index=False):
            value = json.loads(data)
            if kind == "row":
                rows.setdefault(rec_name, []).append(value)
            else:
                out[rec_name] = value
        for rec_name, row_list in rows.items():
            columns = list(dict.fromkeys(c for row in row_list for c in row))
            out[rec_name] = {c: [row.get(c) for row in row_list] for c in columns}
        images = _sql(
            s,
            "SELECT name, groupArray(uri) FROM run_artifacts FINAL WHERE run_id = {r:String} "
            "AND kind = 'image' AND ({n:String} = '' OR name = {n:String}) GROUP BY name",
            r=self.id,
            n=name or "",
        )
        for img, uris in images.itertuples(index=False):
            out[img] = uris[0] if len(uris) == 1 else list(uris)
        return out

    def get_file_names(self) -> list[str]:
        df = _sql(
            self._settings,
            "SELECT name FROM run_artifacts FINAL WHERE run_id = {r:String} AND kind = 'file' ORDER BY name",
            r=self.id,
        )
        return list(df.get("name", []))

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> Path:
        df = _sql(
            self._settings,
            "SELECT uri FROM run_artifacts FINAL WHERE run_id = {r:String} AND name = {n:String}",
            r=self.id,
            n=name,
        )
        if df.empty:
            raise FileNotFoundError(f"run {self.id!r} has no file {name!r}; get_file_names() lists them")
        target = Path(output_file_path or Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        self._artifacts.download(df["uri"].iloc[0], target)
        return target

    def get_children(self) -> list[Run]:
        df = _sql(
            self._settings,
            "SELECT run_id FROM runs FINAL WHERE parent_run_id = {r:String} ORDER BY start_time",
            r=self.id,
        )
        return [type(self).get(rid, settings=self._settings) for rid in df.get("run_id", [])]

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
        df = _sql(settings, "SELECT * FROM runs FINAL WHERE run_id = {r:String}", r=run_id)
        if df.empty:
            raise RunNotFound(f"no run {run_id!r} in the store at {mask_url(query.reader_url(settings))}")
        rec = df.iloc[0]
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
            run.status = _run.RunStatus.RUNNING
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
            rec = _sql(self.settings, "SELECT start_time FROM runs FINAL WHERE run_id = {r:String}", r=run.id)
            if rec.empty:
                return
            steps = _sql(
                self.settings,
                "SELECT metric, max(step) AS last FROM metric_points "
                "WHERE run_id = {r:String} AND rank = {k:UInt32} GROUP BY metric",
                r=run.id,
                k=run.rank,
            )
        except Exception as exc:  # the store being down must not stop training
            log.warning("fleetlog could not look up run %r to resume it (%s); steps restart at 0", run.id, exc)
            return
        run._metrics.resume_steps(dict(zip(steps["metric"], steps["last"].astype(int), strict=True)))
        run._resumed_start = rec["start_time"].iloc[0].timestamp()  # type: ignore[attr-defined]

    def get_runs(self) -> list[Run]:
        """This experiment's runs in the store, newest first."""
        df = _sql(
            self.settings,
            "SELECT run_id FROM runs FINAL WHERE experiment = {e:String} AND project = {p:String} "
            "ORDER BY start_time DESC",
            e=self.name,
            p=self.project,
        )
        return [Run.get(rid, settings=self.settings) for rid in df.get("run_id", [])]

    def submit(self, config: Any, show_output: bool = False) -> Run:
        """Run a ``ScriptRunConfig`` as a child process logging into a new run."""
        from fleetlog.script_run import launch

        return launch(self, config, show_output=show_output)


def _typed(value: str, kind: str) -> Any:
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value == "true"
    if kind == "null":
        return None
    return value
