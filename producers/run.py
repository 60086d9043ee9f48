"""``Run``: the object a training script logs to, named and shaped like Azure ML's.

``Run`` is a thin facade: it validates arguments where the user called it (so a
mistake raises at the call site, with the metric's name), appends points to its
buffer, and queues events for the sender.  It never does network I/O itself:
files go to the artifact store on upload threads, everything else through the
sender's thread.  Reading back (``get_metrics``...) lives in ``fleetlog.runs``.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import numbers
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from fleetlog.producers import _records
from fleetlog.producers._artifacts import ArtifactInfo, ArtifactStore, check_name
from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._limits import MAX_NESTING, check_event_size, check_key_values, check_text
from fleetlog.producers._logs import LineBuffer, LoggingHandler
from fleetlog.producers._sender import Sender, Stream

from fleetlog.events import RunStatus

if TYPE_CHECKING:
    from fleetlog.producers.experiment import Experiment

__all__ = ["Run"]


def _as_float(name: str, value: Any) -> float:
    """Accept anything that is one real number: Python, numpy or a 0-d/1-element tensor."""
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"run.log({name!r}, ...): {value!r} does not fit a float64") from None
    item = getattr(value, "item", None)
    if callable(item):
        numel = getattr(value, "numel", None)
        if (numel() if callable(numel) else getattr(value, "size", None)) == 1:
            return _as_float(name, item())
    raise TypeError(
        f"run.log({name!r}, ...) needs a real number (int, float, numpy scalar or one-element tensor) or a "
        f"string, got {type(value).__name__}; use log_list or log_table for several values"
    )


def _check_step(name: str, step: Any) -> int:
    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        return int(step)
    raise TypeError(f"step for {name!r} must be an int, got {type(step).__name__}")


class Run:
    """One training run; use ``Experiment.start_logging()`` to get one."""

    def __init__(
        self,
        *,
        experiment: Experiment,
        sender: Sender,
        stream: Stream,
        artifacts: ArtifactStore,
        display_name: str,
        parent_id: str = "",
    ) -> None:
        self._experiment = experiment
        self._sender = sender
        self._stream = stream
        self._artifacts = artifacts
        self._metrics: MetricBuffer = stream.buffer
        # The hot path as one closure over the buffer (see MetricBuffer.logger); Run.log documents it.
        self.log = functools.update_wrapper(self._metrics.logger(self._number, _check_step), Run.log)  # type: ignore[method-assign]
        self._lines = LineBuffer()
        self._display_name = display_name
        self._description = ""
        self.parent_id = parent_id
        self.status = RunStatus.NOT_STARTED
        self.ended_here = False  # this handle ended the run: its status is final before the store says so
        self.start_time = 0.0
        self.end_time = 0.0
        self._error: dict[str, str] = {}
        self._properties: dict[str, Any] = {}
        self._tags: dict[str, str] = {}  # what this handle set: read back while the store lags
        self._records = 0
        self._children = 0
        self._handlers: list[tuple[logging.Logger, logging.Handler]] = []
        self.outputs_dir = experiment.settings.sdk.outputs_dir
        stream.periodic.append(self._ship_lines)

    @property
    def id(self) -> str:
        return self._stream.template.run_id

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    @property
    def rank(self) -> int:
        return self._stream.template.source.rank

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self._experiment.name!r}, status={self.status!r})"

    # -- metrics: the hot path ---------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one scalar; repeated calls build a series, steps counting up per metric.

        NaN and infinities are stored as they are: a NaN loss is what you need to see.
        A ``str`` value (Azure's ``run.log('Category', 'Red')``) is kept as a string metric:
        a ``metric`` record, which ``get_metrics()`` returns as the string.
        """
        if value.__class__ is str:
            self._record(name, "metric", value, description, step)
            return
        if value.__class__ is not float:
            value = _as_float(name, value)
        if step is not None and step.__class__ is not int:
            step = _check_step(name, step)
        self._metrics.append(name, value, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log several scalars at one step (each metric's own next step when omitted).

        All of them share one timestamp; a value that is not a number raises and logs none.
        """
        if not isinstance(metrics, Mapping):
            raise TypeError(f"log_metrics needs a mapping of name to value, got {type(metrics).__name__}")
        if step is not None:
            step = _check_step("log_metrics", step)
        texts = {k: v for k, v in metrics.items() if isinstance(v, str)}
        for name, value in texts.items():
            self._record(name, "metric", value, step=step)
        self._metrics.append_many({k: v for k, v in metrics.items() if k not in texts}, step, _as_float)

    def _number(self, name: str, value: Any) -> float | None:
        """The hot path's converter: a float, or None for a string taken as a string metric."""
        if isinstance(value, str):
            self._record(name, "metric", value)
            return None
        return _as_float(name, value)

    # -- records: lists, rows, tables, structured payloads -------------------------------
    def _record(self, name: str, kind: str, data: Any, description: str = "", step: int | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a logged {kind} needs a non-empty str name, got {name!r}")
        self._records += 1
        body = {
            "name": name,
            "type": kind,
            "description": description or "",
            "data": data,
            "index": self._records,
            "step": step,
            "time": time.time(),
        }
        check_event_size(f"{kind} {name!r}", body, self._experiment.settings.kafka.max_message_bytes)
        self._sender.emit(self._stream, "record", body)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """A list of values kept as one record (not a series); any iterable, generators too."""
        self._record(name, "list", _records.list_values(name, value), description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """One row of a table built row by row; columns may differ between rows."""
        self._record(name, "row", _records.row_values(name, kwargs), description or "")

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        """A whole table as columns of equal length."""
        self._record(name, "table", _records.table_columns(name, value), description)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._record(name, "confusion_matrix", _records.confusion_matrix(name, value), description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._record(name, "accuracy_table", _records.accuracy_table(name, value), description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._record(name, "predictions", _records.predictions(name, value), description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._record(name, "residuals", _records.residuals(name, value), description)

    def log_image(
        self, name: str, path: str | os.PathLike | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """A PNG/JPEG file (``path``) or a matplotlib figure (``plot``, rendered to PNG): exactly one.

        The file is taken before this returns, so it may be deleted right away: an image
        up to ``FLEETLOG_INLINE_MAX_BYTES`` is read into memory (and also travels inline),
        a bigger one is staged as ``upload_file`` does.
        """
        if (path is None) == (plot is None):
            raise ValueError(f"log_image({name!r}) needs exactly one of path= or plot=")
        if plot is not None:
            figure = getattr(plot, "gcf", lambda: plot)()  # accepts pyplot itself or a Figure
            if not hasattr(figure, "savefig"):
                raise TypeError(f"log_image({name!r}, plot=...) needs a matplotlib Figure or pyplot")
            png = io.BytesIO()
            figure.savefig(png, format="png")
            source: Any = io.BytesIO(png.getvalue())
            filename = f"images/{name}.png"
        else:
            p = Path(path)
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg", ".webp"):
                raise ValueError(f"log_image({name!r}): {p.name!r} is not an image file (png, jpg, gif, svg...)")
            if not p.is_file():
                raise FileNotFoundError(f"log_image({name!r}): no such file {str(p)!r}")
            source, filename = p, f"images/{name}{p.suffix.lower()}"
            if p.stat().st_size <= self._experiment.settings.sdk.inline_max_bytes:
                source = io.BytesIO(p.read_bytes())  # read now: the caller may delete the file at once
        small = self._experiment.settings.sdk.inline_max_bytes
        data = source.getvalue() if isinstance(source, io.BytesIO) else b""

        def done(info: ArtifactInfo) -> None:
            inline = data if 0 < len(data) == info.size <= small else b""
            self._sender.emit(
                self._stream,
                "artifact",
                info.body(kind="image", description=description, inline=inline) | {"name": name},
            )

        self._artifacts.upload(self.id, filename, source, done)

    # -- files -----------------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: str | os.PathLike | IO[bytes]) -> None:
        """Copy a file (or binary stream) into the run's artifacts under ``name``.

        The content is taken before this returns, so the file may be deleted or rewritten
        (a checkpoint saved again) right away: streams and files up to 16 MiB are read into
        memory, bigger files copied into a private staging folder under ``$FLEETLOG_HOME``
        and uploaded from there in the background.
        """
        self._artifacts.upload(self.id, name, path_or_stream, self._file_done)

    def upload_files(self, names: list[str], paths: list[str | os.PathLike]) -> None:
        if len(names) != len(paths):
            raise ValueError(f"upload_files needs as many names as paths, got {len(names)} and {len(paths)}")
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name: str, path: str | os.PathLike) -> None:
        """Every file under ``path``, named ``name/<relative path>``."""
        root = Path(path)
        if not root.is_dir():
            raise NotADirectoryError(f"upload_folder: {str(root)!r} is not a directory")
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            self.upload_file(f"{check_name(name)}/{file.relative_to(root).as_posix()}", file)

    def _file_done(self, info: ArtifactInfo) -> None:
        self._sender.emit(self._stream, "artifact", info.body(kind="file"))

    # -- params, tags, properties ----------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyper-parameters; nested mappings are flattened with dots."""
        flat = {k: _param_value(v) for k, v in _flatten(params).items()}
        check_key_values("param", flat)
        self._emit("params", flat)

    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        values = {k: "" if v is None else str(v) for k, v in tags.items()}
        check_key_values("tag", values)
        self._tags.update(values)
        self._emit("tags", values)

    def remove_tags(self, keys: list[str] | str) -> None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        for key in keys:
            self._tags.pop(key, None)
        self._emit("untag", {"keys": keys})

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Properties are immutable: setting one again to a different value raises ValueError."""
        for key, value in properties.items():
            if key in self._properties and self._properties[key] != value:
                raise ValueError(f"property {key!r} is already {self._properties[key]!r}; properties cannot change")
        values = {k: _param_value(v) for k, v in properties.items()}
        check_key_values("property", values)
        self._properties.update(properties)
        self._emit("properties", values)

    def set_alert(self, metric: str, above: float | None = None, below: float | None = None) -> None:
        """Alert when ``metric`` goes above ``above`` or below ``below`` (both ``None`` removes the rule).

        The stream processors watch every rank's points from then on and write one
        row to the ``alerts`` table each time the metric crosses out of range.  The
        rule itself lands in ``alert_rules`` (it travels as a ``rows`` event).
        """
        if not isinstance(metric, str) or not metric:
            raise TypeError(f"set_alert needs a metric name, got {metric!r}")
        limits = {"above": above, "below": below}
        for name, limit in limits.items():
            if limit is not None and (not isinstance(limit, numbers.Real) or not math.isfinite(limit)):
                raise ValueError(f"set_alert({metric!r}, {name}=...) needs a finite number, got {limit!r}")
        columns = {"run_id": [self.id], "metric": [metric], "updated_at": [time.time()]}
        columns.update({k: [None if v is None else float(v)] for k, v in limits.items()})
        self._emit("rows", {"table": "alert_rules", "columns": columns})

    @property
    def display_name(self) -> str:
        return self._display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._display_name = check_text("display_name", str(value))
        self._emit_snapshot()

    @property
    def description(self) -> str:
        return self._description

    @description.setter
    def description(self, value: str) -> None:
        self._description = check_text("description", str(value))
        self._emit_snapshot()

    # -- logs ------------------------------------------------------------------------------
    def capture_logging(self, logger: logging.Logger | str | None = None, level: int = logging.INFO) -> logging.Handler:
        """Ship records of ``logger`` (the root logger by default) into this run's logs."""
        target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        handler = LoggingHandler(self, level)
        target.addHandler(handler)
        if target.level == logging.NOTSET or target.level > level:
            target.setLevel(level)
        self._handlers.append((target, handler))
        return handler

    def log_text(self, message: str, *, stream: str = "stdout") -> None:
        """One line of text into the run's logs (what script output capture uses)."""
        self._lines.add(stream, str(message))

    def _ship_lines(self) -> None:
        lines = self._lines.drain()
        if lines is not None:
            self._sender.emit(self._stream, "logs", lines)

    # -- child runs ------------------------------------------------------------------------
    def child_run(self, name: str | None = None, run_id: str | None = None) -> Run:
        """A run linked to this one (``get_metrics(recursive=True)`` includes it)."""
        self._children += 1
        return self._experiment.start_logging(
            run_id=run_id or f"{self.id}_{self._children}", display_name=name, parent_id=self.id, telemetry=False
        )

    def create_children(self, count: int) -> list[Run]:
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"create_children needs a count >= 0, got {count!r}")
        return [self.child_run() for _ in range(count)]

    # -- lifecycle -------------------------------------------------------------------------
    def _emit(self, kind: str, body: dict[str, Any]) -> None:
        """Run-level records (status, params, tags) come from rank 0 only, as in DDP scripts."""
        if self.rank == 0:
            self._sender.emit(self._stream, kind, body)

    def _start(self, *, start_time: float | None = None) -> Run:
        self.status = RunStatus.RUNNING
        self.start_time = start_time or time.time()
        self._emit_snapshot()
        return self

    def _emit_snapshot(self) -> None:
        if self.status == RunStatus.NOT_STARTED:
            return
        self._emit(
            "run",
            {
                "name": self._display_name,
                "description": self._description,
                "parent": self.parent_id,
                "status": self.status,
                "start": self.start_time,
                "end": self.end_time,
                "error": self._error,
            },
        )

    def _finish(self, status: str, error: dict[str, str] | None = None) -> None:
        if self.status in RunStatus.TERMINAL:
            return
        if status == RunStatus.COMPLETED:
            self._upload_outputs()
        self.status = status
        self.ended_here = True
        self.end_time = time.time()
        self._error = error or {}
        self._stream.alive = False
        for logger, handler in self._handlers:
            logger.removeHandler(handler)
        self._emit_snapshot()
        self.flush()

    def _upload_outputs(self) -> None:
        """Azure's convention: whatever the script wrote under ./outputs is kept with the run."""
        folder = self.outputs_dir
        if folder and self.rank == 0 and not self.parent_id and Path(folder).is_dir():
            self.upload_folder("outputs", folder)

    def complete(self) -> None:
        """Mark the run Completed and wait until everything logged is durable."""
        self._finish(RunStatus.COMPLETED)

    def fail(self, error_details: BaseException | str | None = None) -> None:
        """Mark the run Failed, keeping the error's type, message and traceback."""
        self._finish(RunStatus.FAILED, _error_record(error_details))

    def cancel(self) -> None:
        self._finish(RunStatus.CANCELED)

    def flush(self, timeout_seconds: float = 30.0) -> bool:
        """Block until everything logged so far is durable; False on timeout (nothing is dropped)."""
        deadline = time.monotonic() + timeout_seconds
        uploaded = self._artifacts.wait(timeout_seconds)
        self._ship_lines()
        return self._sender.flush(max(0.1, deadline - time.monotonic())) and uploaded

    @property
    def dropped_points(self) -> int:
        """Points refused because the buffer was full (Kafka down and the spool could not keep up)."""
        return self._metrics.dropped

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self.cancel()
        else:
            self.fail(exc)


def _error_record(error: BaseException | str | None) -> dict[str, str]:
    if error is None:
        return {}
    if isinstance(error, BaseException):
        return {
            "type": type(error).__name__,
            "message": str(error),
            "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        }
    return {"type": "", "message": str(error), "traceback": ""}


def _flatten(params: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    if depth > MAX_NESTING:
        raise ValueError(f"params nest deeper than {MAX_NESTING} levels (at {prefix[:80]!r}...)")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + ".", depth + 1))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str | float | int | bool | None:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return str(value)
