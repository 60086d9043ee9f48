"""Reading commands of the CLI (runs, show, metrics, tail, export): registered by ``fleetlog.cli``."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
