"""The migration record shared by the core and derived schemas."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Migration"]


@dataclass(frozen=True)
class Migration:
    """One schema step: applied once, in version order, recorded in ``schema_migrations``."""

    version: int
    name: str
    statements: tuple[str, ...]
