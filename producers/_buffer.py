"""The per-run point buffer: the only thing ``run.log`` touches.

Points go into four typed ``array.array`` columns (no per-point Python objects
survive the call) and leave as numpy arrays, zero-copy, when the sender drains
the buffer.  The buffer is bounded; its when-full policy is to drop the newest
points and count them, because the alternative (blocking) would stall training.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["DrainedPoints", "MetricBuffer"]

log = logging.getLogger("fleetlog")

_MAX_NAME_BYTES = 1024


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


class MetricBuffer:
    """Columns of points that the sender has not taken yet, for one run.

    ``wake`` is called (once per fill) when the buffer passes ``wake_at`` points so
    the sender ships early instead of waiting for its next tick.
    """

    def __init__(self, *, capacity: int, wake_at: int, wake: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._next_step: list[int] = []
        self._capacity = capacity
        self._wake_at = wake_at
        self._wake = wake
        self.dropped = 0
        self._warned = False
        self._reset()

    def _reset(self) -> None:
        self._idx = array("I")
        self._step = array("q")
        self._ts = array("d")
        self._val = array("d")

    def append(self, name: str, value: float, step: int | None) -> None:
        idx = self._index.get(name)
        if idx is None:
            idx = self._add_name(name)
        with self._lock:
            if step is None:
                step = self._next_step[idx]
            n = len(self._val)
            if n >= self._wake_at:
                if n >= self._capacity:
                    self._drop()
                    return
                if n == self._wake_at:
                    self._wake()
            self._next_step[idx] = step + 1
            self._idx.append(idx)
            self._step.append(step)
            self._ts.append(time.time())
            self._val.append(value)

    def next_step(self, name: str) -> int:
        """The step an omitted ``step=`` would get now (used by ``log_metrics``)."""
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
                self._index[name] = len(self._names)
                self._names.append(name)
                self._next_step.append(0)
            return self._index[name]

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or not self._warned:
            self._warned = True
            log.warning(
                "fleetlog buffer full (%d points): the sender is not keeping up or Kafka is down; "
                "new points are dropped and counted (run.dropped_points) until it drains",
                self._capacity,
            )
            self._wake()

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held) and no parent points."""
        self._lock = threading.Lock()
        self._warned = False
        self._reset()

    def drain(self) -> DrainedPoints | None:
        """Take everything buffered; the columns become numpy arrays without copying."""
        with self._lock:
            if not self._val:
                return None
            idx, step, ts, val = self._idx, self._step, self._ts, self._val
            names = tuple(self._names)
            self._warned = False
            self._reset()
        return DrainedPoints(
            names=names,
            name_idx=np.frombuffer(idx, dtype=np.uint32),
            step=np.frombuffer(step, dtype=np.int64),
            ts_ms=(np.frombuffer(ts, dtype=np.float64) * 1000.0).astype(np.int64),
            value=np.frombuffer(val, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self._val)
