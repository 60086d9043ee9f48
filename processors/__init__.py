"""Stream processing: a pure numpy core plus the faust-streaming wiring.

``fleetlog.processors.core`` holds the arithmetic (rollups, summaries, cross-rank
aggregates, fleet windows, alerts) and never imports Faust; ``pipeline`` routes a
batch of records through it; ``app``, ``worker`` and ``tables`` run it as a Faust
consumer group (``fleetlog processor``).  Importing this package imports nothing
heavy, so the core can be used and tested without Kafka.
"""

__all__: list[str] = []
