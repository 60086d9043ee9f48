"""``Run``: fleetlog's own (``Run.get_context()``, ``Run(experiment, run_id)``, logging and reading back)."""

from __future__ import annotations

from fleetlog.runs import Run

__all__ = ["Run"]
