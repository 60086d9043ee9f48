"""``fleetlog.azureml.widgets``: ``RunDetails(run).show()``, the run's live card in Jupyter."""

from __future__ import annotations

from fleetlog.ui.notebook import RunDetails

__all__ = ["RunDetails"]
