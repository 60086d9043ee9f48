"""``Run``: the object a training script logs to, named and shaped like Azure ML's.

``Run`` is a thin facade: it validates arguments where the user called it (so a
mistake raises at the call site, with the metric's name), appends points to its
buffer, and queues lifecycle events for the sender.  It never does I/O itself.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._sender import Sender, Stream

__all__ = ["Run", "RunStatus"]


class RunStatus:
    """Azure ML's run statuses."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})


def _as_float(name: str, value: Any) -> float:
    """Accept anything that is one real number: Python, numpy or a 0-d/1-element tensor."""
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        numel = getattr(value, "numel", None)
        if (numel() if callable(numel) else getattr(value, "size", None)) == 1:
            return _as_float(name, item())
    raise TypeError(
        f"run.log({name!r}, ...) needs a real number (int, float, numpy scalar or one-element tensor), "
        f"got {type(value).__name__}; use log_list or log_table for several values"
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
        sender: Sender,
        stream: Stream,
        display_name: str,
        parent_id: str = "",
    ) -> None:
        self._sender = sender
        self._stream = stream
        self._metrics: MetricBuffer = stream.buffer
        self.display_name = display_name
        self.parent_id = parent_id
        self.status = RunStatus.NOT_STARTED
        self.start_time = 0.0
        self.end_time = 0.0
        self._error: dict[str, str] = {}

    @property
    def id(self) -> str:
        return self._stream.template.run_id

    @property
    def experiment(self) -> str:
        return self._stream.template.experiment

    @property
    def project(self) -> str:
        return self._stream.template.project

    @property
    def rank(self) -> int:
        return self._stream.template.source.rank

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment!r}, status={self.status!r})"

    def _repr_html_(self) -> str:
        """Jupyter: status, params and key metrics with sparklines (read from the store)."""
        from fleetlog.ui.notebook import run_html

        return run_html(self)

    def show(self, refresh_seconds: float = 2.0) -> None:
        """Jupyter: display this run and keep the view updated while it runs."""
        from fleetlog.ui.notebook import show

        show(self, refresh_seconds=refresh_seconds)

    # -- metrics: the hot path ---------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one scalar; repeated calls build a series, steps counting up per metric.

        NaN and infinities are stored as they are: a NaN loss is what you need to see.
        """
        cls = value.__class__
        if cls is not float and cls is not int:
            value = _as_float(name, value)
        if step is not None and step.__class__ is not int:
            step = _check_step(name, step)
        self._metrics.append(name, value, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log several scalars at one step (each metric's own next step when omitted)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"log_metrics needs a mapping of name to value, got {type(metrics).__name__}")
        if step is not None:
            step = _check_step("log_metrics", step)
        append = self._metrics.append
        for name, value in metrics.items():
            cls = value.__class__
            append(name, value if cls is float or cls is int else _as_float(name, value), step)

    # -- params and tags -----------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyper-parameters; nested mappings are flattened with dots."""
        flat = _flatten(params)
        self._emit("params", {k: _param_value(v) for k, v in flat.items()})

    def tag(self, key: str, value: str | None = None) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key in tags:
            if not isinstance(key, str) or not key:
                raise TypeError(f"tag keys must be non-empty str, got {key!r}")
        self._emit("tags", {k: "" if v is None else str(v) for k, v in tags.items()})

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> Run:
        self.status = RunStatus.RUNNING
        self.start_time = time.time()
        self._emit_snapshot()
        return self

    def _emit(self, kind: str, body: dict[str, Any]) -> None:
        """Run-level records (status, params, tags) come from rank 0 only, as in DDP scripts."""
        if self.rank == 0:
            self._sender.emit(self._stream, kind, body)

    def _emit_snapshot(self) -> None:
        self._emit(
            "run",
            {
                "name": self.display_name,
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
        self.status = status
        self.end_time = time.time()
        self._error = error or {}
        self._emit_snapshot()
        self.flush()

    def complete(self) -> None:
        """Mark the run Completed and wait until everything logged is durable."""
        self._finish(RunStatus.COMPLETED)

    def fail(self, error_details: BaseException | str | None = None) -> None:
        """Mark the run Failed, keeping the error's type, message and traceback."""
        self._finish(RunStatus.FAILED, _error_record(error_details))

    def cancel(self) -> None:
        self._finish(RunStatus.CANCELED)

    def flush(self, timeout_seconds: float = 30.0) -> bool:
        """Block until the broker acknowledged everything logged so far; False on timeout."""
        return self._sender.flush(timeout_seconds)

    @property
    def dropped_points(self) -> int:
        """Points refused because the buffer was full (Kafka down or too slow)."""
        return self._metrics.dropped

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.complete()
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


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str | float | int | bool | None:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return str(value)
