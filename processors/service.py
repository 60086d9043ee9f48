"""``fleetlog processor``: topics checked, the Faust app built, one worker run in the foreground.

Run several (on one machine or many) to share the work: they form one consumer
group, and Faust moves whole partitions -- each with its runs' state -- between them.
"""

from __future__ import annotations

import asyncio

import faust
from aiokafka.admin import AIOKafkaAdminClient
from fleetlog.processors.app import build_app

from fleetlog.config import Settings
from fleetlog.errors import ConfigError
from fleetlog.lag import topic_partitions
from fleetlog.topics import ensure_topics

__all__ = ["run_processor", "source_partitions"]


async def source_partitions(settings: Settings) -> int:
    """Partitions of the metrics and events topics, which must be equal.

    A run's metrics and events share its key, so they land on the same partition
    number only if both topics have the same count; the run's state is kept per
    partition, so anything else would split a run between workers.
    """
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
    await admin.start()
    try:
        tps = await topic_partitions(admin, [settings.metrics_topic, settings.events_topic])
    finally:
        await admin.close()
    counts = {t: sum(1 for tp in tps if tp.topic == t) for t in (settings.metrics_topic, settings.events_topic)}
    if len(set(counts.values())) != 1 or not all(counts.values()):
        raise ConfigError(f"metrics and events topics need the same, non-zero partition count; found {counts}")
    return next(iter(counts.values()))


async def _prepare(settings: Settings) -> int:
    await ensure_topics(settings)
    return await source_partitions(settings)


def run_processor(settings: Settings, *, loglevel: str = "INFO") -> None:
    """Run one processor worker until SIGINT/SIGTERM (Faust then commits and leaves the group)."""
    loop = asyncio.new_event_loop()
    try:
        partitions = loop.run_until_complete(_prepare(settings))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())
    (settings.state_dir / "processor").mkdir(parents=True, exist_ok=True)  # Faust's datadir
    app, _ = build_app(settings, partitions=partitions)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
