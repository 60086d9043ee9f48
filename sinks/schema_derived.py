"""Tables that stream processors fill (rollups, summaries, alerts...), as migrations.

Kept apart from the core schema so the processors' tables evolve on their own:
their migrations are numbered from 100 up, the core's below 100.
"""

from __future__ import annotations

from fleetlog.sinks.schema_types import Migration

__all__ = ["DERIVED_MIGRATIONS", "DERIVED_TABLES"]

DERIVED_MIGRATIONS: tuple[Migration, ...] = ()

# Tables the sink accepts ``rows`` events for; anything else goes to dead_letters.
DERIVED_TABLES: frozenset[str] = frozenset()
