"""Kafka topics fleetlog uses, created up front so no stage relies on auto-creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from fleetlog.config import Settings

__all__ = ["ensure_topics", "topic_names"]

log = logging.getLogger("fleetlog")


def topic_names(settings: Settings) -> list[str]:
    return [
        settings.metrics_topic,
        settings.events_topic,
        settings.dead_letter_topic,
        settings.derived_topic,
        settings.alerts_topic,
    ]


async def ensure_topics(settings: Settings, *, timeout_seconds: float = 30.0) -> list[str]:
    """Create missing topics (partitions and replication from settings); return those created."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
    await asyncio.wait_for(admin.start(), timeout_seconds)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_names(settings) if t not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=t,
                num_partitions=settings.topics.partitions,
                replication_factor=settings.topics.replication,
                topic_configs={"max.message.bytes": str(10 << 20)},
            )
            for t in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(new)
        log.info("created Kafka topics %s", missing)
        return missing
    finally:
        await admin.close()
