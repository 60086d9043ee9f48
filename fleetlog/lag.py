"""Consumer lag per group and topic: how far each stage is behind the producers."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from fleetlog.config import Settings

__all__ = ["consumer_lag", "topic_partitions"]


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the given topics that exist (fresh metadata from the broker)."""
    described = await admin.describe_topics(topics)
    return [
        TopicPartition(t["topic"], p["partition"]) for t in described if t["error_code"] == 0 for p in t["partitions"]
    ]


async def consumer_lag(settings: Settings, group_id: str, topics: list[str]) -> dict[str, int]:
    """Messages not yet committed by ``group_id``, summed over partitions, per topic."""
    client = settings.kafka.client_kwargs(request_timeout_seconds=5.0)  # a status read: answer fast or say so
    admin = AIOKafkaAdminClient(**client)
    consumer = AIOKafkaConsumer(**client)
    await asyncio.gather(admin.start(), consumer.start())
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        tps = await topic_partitions(admin, topics)
        ends = await consumer.end_offsets(tps) if tps else {}
        lag = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            done = committed[tp].offset if tp in committed else 0
            lag[tp.topic] += end - max(done, 0)
        return lag
    finally:
        await asyncio.gather(admin.close(), consumer.stop())
