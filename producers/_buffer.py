"""The per-run point buffer: the only thing ``run.log`` touches.

A point is one 28-byte record (name index u32, step i64, unix time f64, value f64)
packed by ``struct`` and added to one ``bytearray`` by a single ``extend`` call.
Under CPython's GIL that call is atomic, so the training thread appends without a
lock and points never tear, even with several logging threads; the sender drains
by copying and then deleting the prefix it read, which leaves points appended
meanwhile in place.  No per-point Python object survives the call, and the
records leave as numpy columns when the sender drains.

The buffer is bounded; its when-full policy is to drop the newest points and
count them, because the alternative (blocking) would stall training.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import time as _now
from typing import Any

import numpy as np

__all__ = ["DrainedPoints", "MetricBuffer"]

log = logging.getLogger("fleetlog")

_MAX_NAME_BYTES = 1024
_RECORD = struct.Struct("<Iqdd")  # name index, step, unix time, value
_PACK = _RECORD.pack
_SIZE = _RECORD.size
_DTYPE = np.dtype([("idx", "<u4"), ("step", "<i8"), ("ts", "<f8"), ("value", "<f8")])


@dataclass(frozen=True, slots=True)
class DrainedPoints:
    """A buffer's content handed to the sender: columns plus the name table."""

    names: tuple[str, ...]
    name_idx: np.ndarray
    step: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.value)


def _as_is(name: str, value: Any) -> Any:
    return value


class MetricBuffer:
    """Points that the sender has not taken yet, for one run.

    ``wake`` is called (once per fill) when the buffer passes ``wake_at`` points so
    the sender ships early instead of waiting for its next tick.  Auto-numbered
    steps are counted per metric; two threads logging the *same* metric without
    explicit steps may both get one step number (pass ``step=`` from such threads).
    """

    def __init__(self, *, capacity: int, wake_at: int, wake: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()  # names, drains and the when-full path; never the hot path
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._next_step: list[int] = []
        self._capacity = capacity
        self._wake_at = min(wake_at, capacity)
        self._wake = wake
        self._points = bytearray()
        self._fast_below = self._wake_at * _SIZE  # byte length under which append skips every check
        self.dropped = 0
        self._woken = False
        self._warned = False
        self._append = self.logger(_as_is, _as_is)  # values already checked by the caller

    def append(self, name: str, value: float, step: int | None) -> None:
        """Add one point; ``value`` is a real number and ``step`` an int or None (``Run`` checks)."""
        self._append(name, value, "", step)

    def logger(self, as_float: Callable[[str, Any], float], as_step: Callable[[str, Any], int]) -> Callable[..., None]:
        """A point's whole path -- the caller's argument checks, then the append -- as one plain function.

        ``run.log`` is the hottest call in a training loop, and in CPython every call level
        and attribute lookup is a measurable share of it: this closure binds the buffer's
        parts once, so a point costs one function call instead of a bound method calling
        another.  :meth:`append` is the same closure without the checks (its callers have made them).
        """
        index, nxt, points, fast_below = self._index, self._next_step, self._points, self._fast_below
        add_name, admit, extend, pack, now = self._add_name, self._admit, self._points.extend, _PACK, _now

        def log(name: str, value: Any, description: str = "", step: int | None = None) -> None:
            if value.__class__ is not float:
                value = as_float(name, value)
            if step is not None and step.__class__ is not int:
                step = as_step(name, step)
            idx = index.get(name)
            if idx is None:
                idx = add_name(name)
            if step is None:
                step = nxt[idx]
            try:
                record = pack(idx, step, now(), value)
            except struct.error:
                raise ValueError(f"step for {name!r} must fit a signed 64-bit integer, got {step}") from None
            if len(points) >= fast_below and not admit(1):
                return  # a dropped point takes no step
            nxt[idx] = step + 1
            extend(record)

        return log

    def append_many(self, metrics: Mapping[str, Any], step: int | None, convert: Callable[[str, Any], float]) -> None:
        """Add one point per entry of ``metrics``, stamped with one time, in one atomic ``extend``.

        ``convert(name, value)`` turns a non-float value into a float or raises; when it
        raises nothing of this call is added.
        """
        points = self._points
        if len(points) + _SIZE * len(metrics) > self._fast_below and not self._admit(len(metrics)):
            return
        index, nxt, t = self._index, self._next_step, _now()
        records = []
        add = records.append
        try:
            for name, value in metrics.items():
                idx = index.get(name)
                if idx is None:
                    idx = self._add_name(name)
                if value.__class__ is not float:
                    value = convert(name, value)
                s = nxt[idx] if step is None else step
                add(_PACK(idx, s, t, value))
                nxt[idx] = s + 1
        except struct.error:
            raise ValueError(f"step must fit a signed 64-bit integer, got {step}") from None
        points.extend(b"".join(records))

    def next_step(self, name: str) -> int:
        """The step an omitted ``step=`` would get now."""
        idx = self._index.get(name)
        return 0 if idx is None else self._next_step[idx]

    def resume_steps(self, last_steps: dict[str, int]) -> None:
        """Continue auto-numbering after the given last steps (a resumed run)."""
        for name, last in last_steps.items():
            idx = self._index.get(name)
            idx = self._add_name(name) if idx is None else idx
            self._next_step[idx] = max(self._next_step[idx], last + 1)

    def _add_name(self, name: str) -> int:
        if not isinstance(name, str):
            raise TypeError(f"metric name must be a str, got {type(name).__name__}: {name!r}")
        if not name or len(name.encode()) > _MAX_NAME_BYTES:
            raise ValueError(f"metric name must be 1..{_MAX_NAME_BYTES} bytes of UTF-8, got {name[:80]!r}")
        with self._lock:
            if name not in self._index:
                # the step slot exists before the name can be looked up by another thread
                self._next_step.append(0)
                self._names.append(name)
                self._index[name] = len(self._names) - 1
            return self._index[name]

    def _admit(self, count: int) -> bool:
        """The slow path past ``wake_at``: wake the sender once per fill, drop past capacity."""
        with self._lock:
            if len(self._points) // _SIZE + count <= self._capacity:
                if not self._woken:
                    self._woken = True
                    self._wake()
                return True
            self.dropped += count
            if not self._warned:
                self._warned = True
                log.warning(
                    "fleetlog buffer full (%d points): the sender is not keeping up or Kafka is down; "
                    "new points are dropped and counted (run.dropped_points) until it drains",
                    self._capacity,
                )
                self._wake()
            return False

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held) and no parent points."""
        self._lock = threading.Lock()
        del self._points[:]  # in place: ``logger`` closures hold this very bytearray
        self._woken = self._warned = False

    def drain(self) -> DrainedPoints | None:
        """Take everything buffered as numpy columns.

        Copy the prefix, then delete it: a point appended in between lands after the
        prefix and stays for the next drain.  Each point is one atomic ``extend``, so
        the prefix always holds whole points.
        """
        with self._lock:
            points = self._points
            n = len(points)
            if not n:
                return None
            taken = points[:n]
            del points[:n]
            names = tuple(self._names)
            self._woken = self._warned = False
        records = np.frombuffer(taken, dtype=_DTYPE)
        return DrainedPoints(
            names=names,
            name_idx=records["idx"].copy(),
            step=records["step"].copy(),
            ts_ms=(records["ts"] * 1000.0).astype(np.int64),
            value=records["value"].copy(),
        )

    def __len__(self) -> int:
        return len(self._points) // _SIZE
