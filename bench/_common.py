"""What every benchmark shares: repeated timing, result rows, the machine's state, subprocess isolation."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

__all__ = ["Row", "in_subprocess", "load", "machine", "median", "percentile", "timed"]


@dataclass
class Row:
    """One figure: its section, what it is, the value and unit, and the goal it is held to."""

    section: str
    name: str
    value: float | None
    unit: str
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn: Callable[[], Any], *, reps: int) -> list[float]:
    """Wall seconds of ``reps`` calls of ``fn``."""
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def load() -> dict[str, float]:
    """The machine's load averages and how busy its cores were over the last 0.5 s."""
    one, five, fifteen = os.getloadavg()
    return {
        "load1": round(one, 2),
        "load5": round(five, 2),
        "load15": round(fifteen, 2),
        "cpu_busy_percent": psutil.cpu_percent(interval=0.5),
    }


def machine() -> dict[str, Any]:
    import numpy

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "numpy": numpy.__version__,
    }


def _call(target: str, kwargs: dict[str, Any]) -> Any:
    module, _, name = target.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)(**kwargs)


def in_subprocess(target: str, timeout_seconds: float = 600, **kwargs: Any) -> Any:
    """Call ``module.function(**kwargs)`` in a fresh spawned interpreter and return its result.

    Each system under test gets a clean process: no other library's threads or imports,
    and chDB (one engine per process, no fork after use) stays out of the parent.
    """
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply_async(_call, (target, kwargs)).get(timeout_seconds)


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    t = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t
