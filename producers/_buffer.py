"""The per-run point buffer: the only thing ``run.log`` touches.

A point is one 28-byte record (name index u32, step i64, unix time f64, value f64)
packed by ``struct`` and added to one ``bytearray`` by a single ``extend`` call.
Under CPython's GIL that call is atomic, so the training thread appends without a
lock and points never tear, even with several logging threads; the sender drains
by copying and then deleting the prefix it read, which leaves points appended
meanwhile in place.  No per-point Python object survives the call, and the
records leave as numpy columns when the sender drains.

The buffer is bounded, and what happens when it is full is a declared policy
(``FLEETLOG_BUFFER_WHEN_FULL``, after Vector's ``when_full``):

- ``spool`` (the default): the buffer keeps accepting, up to ``_SPOOL_HEADROOM`` times
  its capacity, and flags the overflow; the sender, on its own thread, then moves
  the excess to the on-disk spool and replays it in order.  The training thread
  never writes to disk and never waits on I/O; while the sender is behind it hands
  over the GIL for 0.5 ms once per ``_YIELD_EVERY`` points, or a loop that does
  nothing but log would starve the sender.  Should the buffer still reach that
  bound, ``log`` waits for the sender to spill (at most ``block_timeout_seconds``)
  rather than lose points; only then does it drop (counted, logged once).
- ``drop_newest``: points past the capacity are dropped, counted and logged once.
- ``block``: ``log`` waits, at most ``block_timeout_seconds``, for the sender to
  drain; then it drops, counted and logged once.  The sender's own thread (which
  logs telemetry) never blocks.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import time as _now
from typing import Any

import numpy as np

__all__ = ["WHEN_FULL", "DrainedPoints", "MetricBuffer"]

log = logging.getLogger("fleetlog")

_MAX_NAME_BYTES = 1024
_RECORD = struct.Struct("<Iqdd")  # name index, step, unix time, value
_PACK = _RECORD.pack
_SIZE = _RECORD.size
_DTYPE = np.dtype([("idx", "<u4"), ("step", "<i8"), ("ts", "<f8"), ("value", "<f8")])
WHEN_FULL = ("spool", "drop_newest", "block")
# Under "spool", how many capacities of points the buffer holds before the sender has moved them to disk:
# room for the sender to get the GIL from a loop that does nothing but log, still a bound on memory.
_SPOOL_HEADROOM = 4
_YIELD_EVERY = 20_000  # points logged past capacity between two GIL hand-overs to a sender that is behind


@dataclass(frozen=True, slots=True)
class DrainedPoints:
    """A buffer's content handed to the sender: columns plus the name table.

    ``overflowed`` says the buffer passed its capacity before this drain (policy
    ``spool``): the sender is behind and spills to disk.  The columns may be strided
    views of one record array; the encoder copies them once into the message.
    """

    names: tuple[str, ...]
    name_idx: np.ndarray
    step: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray
    overflowed: bool = False

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
    ``when_full`` is the policy of the module docstring; a buffer without a sender
    behind it (unit tests) defaults to ``drop_newest``.
    """

    def __init__(
        self,
        *,
        capacity: int,
        wake_at: int,
        wake: Callable[[], None] = lambda: None,
        when_full: str = "drop_newest",
        block_timeout_seconds: float = 10.0,
    ) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        self._lock = threading.Lock()  # names, drains and the when-full path; never the hot path
        self._drained = threading.Condition(self._lock)  # "block" waits on it; drain() notifies
        self.when_full = when_full
        self._block_seconds = block_timeout_seconds
        self._limit = capacity * _SPOOL_HEADROOM if when_full == "spool" else capacity
        self._overflowed = False
        self._past_capacity = 0
        self.sender_ident: int | None = None  # the sender's thread: it must never block on its own buffer
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
        self._drop_woken = False
        self._warned = False
        self._append = self.logger(_as_is, _as_is)  # values already checked by the caller

    def append(self, name: str, value: float, step: int | None) -> None:
        """Add one point; ``value`` is a real number and ``step`` an int or None (``Run`` checks)."""
        self._append(name, value, "", step)

    def logger(
        self, as_float: Callable[[str, Any], float | None], as_step: Callable[[str, Any], int]
    ) -> Callable[..., None]:
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
                if value is None:
                    return
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
        """The slow path past ``wake_at``: wake the sender once per fill; past capacity, apply ``when_full``."""
        with self._lock:
            held = len(self._points) // _SIZE
            if held + count <= self._capacity or not held:
                if not self._woken:
                    self._woken = True
                    self._wake()
                return True
            if held + count <= self._limit:  # "spool": the sender moves the excess to disk
                if not self._overflowed:
                    self._overflowed = True
                    self._wake()
                self._past_capacity += count
                if self._past_capacity < _YIELD_EVERY or threading.get_ident() == self.sender_ident:
                    return True
                self._past_capacity = 0
            else:
                # "block" waits for room below the capacity; "spool" at its bound waits for the sender to
                # spill to disk (rather than lose points), both at most block_timeout_seconds.
                bound = self._capacity if self.when_full == "block" else self._limit
                if (
                    self.when_full != "drop_newest"
                    and threading.get_ident() != self.sender_ident
                    and self._wait_for_room(count, bound)
                ):
                    return True
                self._drop(count, held)
                return False
        # Behind, and a loop that never releases the GIL starves the sender: its event loop gets the GIL
        # back only when the interpreter preempts this thread, so one Kafka request can take seconds and
        # the buffer would reach its bound.  Once per _YIELD_EVERY points past capacity this thread sleeps
        # 0.5 ms -- no I/O, no lock held -- so the sender can move the excess to the spool.
        time.sleep(0.0005)
        return True

    def _wait_for_room(self, count: int, bound: int) -> bool:
        """Lock held: wait for drains until ``count`` more points stay within ``bound``, or the timeout passes."""
        deadline = time.monotonic() + self._block_seconds
        while len(self._points) // _SIZE + count > bound:
            self._wake()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drained.wait(left)
        return True

    def _drop(self, count: int, held: int) -> None:
        """Lock held: count dropped points, wake the sender once per fill, warn once in the buffer's life."""
        self.dropped += count
        if not self._drop_woken:
            self._drop_woken = True
            self._wake()
        if self._warned:
            return
        self._warned = True
        why = {
            "spool": "the sender thread has not run long enough to move the excess to the spool (starved of CPU?)",
            "drop_newest": "the sender is not keeping up or Kafka is down (FLEETLOG_BUFFER_WHEN_FULL=drop_newest)",
            "block": f"the sender did not drain it within FLEETLOG_BLOCK_TIMEOUT_SECONDS={self._block_seconds:g} s",
        }[self.when_full]
        log.warning(
            "fleetlog buffer full: %d points held, limit %d (FLEETLOG_MAX_BUFFER_POINTS=%d, when full: %s): %s; "
            "dropping the newest %d points and every point that does not fit from now on, counted in "
            "run.dropped_points (this warning is not repeated)",
            held,
            self._limit,
            self._capacity,
            self.when_full,
            why,
            count,
        )

    def count_dropped(self, points: int) -> None:
        """Points the sender dropped for this buffer (the spool was full); shown in ``run.dropped_points``."""
        with self._lock:
            self.dropped += points

    @property
    def overflowed(self) -> bool:
        """Policy ``spool``: the buffer passed its capacity since the last drain (the sender is behind)."""
        return self._overflowed

    @property
    def wants_drain(self) -> bool:
        """More than ``wake_at`` points wait, or the buffer overflowed: worth draining now."""
        return self._overflowed or len(self._points) >= self._fast_below

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held) and no parent points."""
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        del self._points[:]  # in place: ``logger`` closures hold this very bytearray
        self._woken = self._drop_woken = self._warned = self._overflowed = False
        self.sender_ident = None

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
            overflowed = self._overflowed
            self._woken = self._drop_woken = self._overflowed = False
            self._drained.notify_all()
        records = np.frombuffer(taken, dtype=_DTYPE)  # views into ``taken``: no copy until the encoder's
        return DrainedPoints(
            names=names,
            name_idx=records["idx"],
            step=records["step"],
            ts_ms=(records["ts"] * 1000.0).astype(np.int64),
            value=records["value"],
            overflowed=overflowed,
        )

    def __len__(self) -> int:
        return len(self._points) // _SIZE
