"""A real broker's life cycle through fleetlog.localkafka: start, serve, restart on the same data, stop.

Needs Java 17 and the broker JARs (fetched by the first start, cached afterwards). With the JARs and the class-data
archive cached a start takes about 2 s, the whole test under 15 s.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fleetlog.localkafka import LocalKafka, free_port

pytestmark = pytest.mark.integration


async def produce_and_consume(bootstrap: str, topic: str, value: bytes) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)  # the topic is auto-created
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id="t")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()  # needs the offsets topic: proves its replication factor 1 works
        return record.value
    finally:
        await consumer.stop()


def test_start_produce_consume_restart_stop(tmp_path: Path) -> None:
    extra = tmp_path / "extra.properties"
    extra.write_text("log.retention.hours=24\n")
    kafka = LocalKafka(state_dir=tmp_path / "kafka", port=free_port(), extra_properties=extra)
    try:
        began = time.monotonic()
        status = kafka.start()
        print(f"broker start took {time.monotonic() - began:.2f} s")
        assert status.running
        assert status.pid is not None
        assert status.bootstrap == kafka.bootstrap
        assert "Kafka Server started" in status.log_path.read_text()
        assert kafka.status() == status

        cluster_id = (tmp_path / "kafka" / "cluster.id").read_text().strip()
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id)
        properties = (tmp_path / "kafka" / "server.properties").read_text()
        assert f"advertised.listeners=PLAINTEXT://{kafka.bootstrap}\n" in properties
        assert properties.rstrip().endswith("log.retention.hours=24")

        # Starting again is a no-op on the running broker.
        assert kafka.start().pid == status.pid

        assert asyncio.run(produce_and_consume(kafka.bootstrap, "localkafka-test", b"hello")) == b"hello"

        # A restart keeps the data (same cluster id, storage not reformatted).
        kafka.stop()
        assert not kafka.status().running
        restarted = kafka.start()
        assert restarted.pid != status.pid
        assert (tmp_path / "kafka" / "cluster.id").read_text().strip() == cluster_id
        assert asyncio.run(produce_and_consume(kafka.bootstrap, "localkafka-test", b"again")) == b"again"
    finally:
        kafka.stop()
    stopped = kafka.status()
    assert not stopped.running
    assert stopped.pid is None
