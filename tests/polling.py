"""Waiting on an asynchronous pipeline in tests: one way to poll, shared by every suite.

The pipeline (SDK -> Kafka -> processors -> sink -> store) is asynchronous, so a test
asks again until what it expects is there or a deadline passes; the last failure is
what the test reports.  ``tests/`` is on ``sys.path`` (pytest puts the rootdir's
conftest directory there), so any test imports this as ``from polling import ...``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import fleetlog

T = TypeVar("T")

# What a check may raise while the data is still on its way.
NOT_YET: tuple[type[BaseException], ...] = (AssertionError, KeyError, IndexError, fleetlog.RunNotFound)


def eventually(
    check: Callable[[], T],
    timeout: float = 60.0,
    every: float = 0.3,
    retry_on: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """Call ``check`` until it stops raising one of ``retry_on``; return its result, or re-raise at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except retry_on:
            if time.monotonic() > deadline:
                raise
        time.sleep(every)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "",
    every: float = 0.3,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except retry_on:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(every)


def wait_steady(
    predicate: Callable[[], Any], hold: float, timeout: float = 60.0, what: str = "", every: float = 0.3
) -> None:
    """Poll until ``predicate`` has been truthy on every poll for ``hold`` seconds; AssertionError at the deadline.

    For a pipeline that may still emit on its own (timers, rows derived from rows): one quiet look
    can fall between two bursts, a quiet stretch of ``hold`` seconds cannot.
    """
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if predicate():
            quiet_since = now if quiet_since is None else quiet_since
            if now - quiet_since >= hold:
                return
        else:
            quiet_since = None
        if now > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} to hold for {hold}s")
        time.sleep(every)
