"""Run statuses: the values of a run's ``status``, defined once for every stage and reader."""

from __future__ import annotations

__all__ = ["RunStatus"]


class RunStatus:
    """Azure ML's run statuses, plus ``Lost`` (set by the processors when heartbeats stop).

    Plain strings, because they travel on the wire (a ``run`` event's ``status``) and are
    stored as they are in ClickHouse.
    """

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    LOST = "Lost"
    # A run in one of these has ended by its own hand; ``Lost`` may still come back to life.
    TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
