"""``Model``: fleetlog's model registry (``run.register_model`` returns one)."""

from __future__ import annotations

from fleetlog.models import Model

__all__ = ["Model"]
