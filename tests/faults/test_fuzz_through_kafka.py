"""Fuzzed messages pushed through Kafka end in dead_letters with reasons; valid traffic lands intact."""

from __future__ import annotations

import asyncio

import pandas as pd
from aiokafka import AIOKafkaProducer
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.events import InvalidEvent, decode

from .fuzzing import cases


async def _push(settings, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, max_request_size=4 << 20)
    await producer.start()
    try:
        for i, data in enumerate(payloads):
            topic = settings.metrics_topic if i % 2 else settings.events_topic
            await producer.send(topic, data, key=f"k{i % 7}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_fuzzed_messages_through_kafka_become_dead_letters_and_valid_points_land(settings, stack, tmp_path):
    invalid = []
    for data in cases(seed=99, count=20_000):
        try:
            decode(data)
        except InvalidEvent:
            invalid.append(data)
        if len(invalid) == 2_000:
            break
    exp = fleetlog.Experiment("valid-beside-fuzz", settings=settings)
    run = exp.start_logging(telemetry=False)
    for i in range(5_000):
        run.log("x", float(i))
    asyncio.run(_push(settings, invalid))
    for i in range(5_000):
        run.log("x", float(i))
    run.complete()
    exp.close()

    def landed() -> tuple[pd.DataFrame, pd.DataFrame]:
        dead = query.sql("SELECT count() AS n, countIf(reason = '') AS blank FROM dead_letters", settings=settings)
        pts = query.sql(
            "SELECT count() AS n, sum(value) AS s FROM metric_points WHERE run_id = {r:String}",
            {"r": run.id},
            settings=settings,
        )
        assert int(dead["n"].iloc[0]) >= 2_000 and int(pts["n"].iloc[0]) == 10_000, (dead, pts)
        return dead, pts

    dead, pts = eventually(landed, 90)
    assert int(dead["n"].iloc[0]) == 2_000 and int(dead["blank"].iloc[0]) == 0
    assert float(pts["s"].iloc[0]) == 2 * float(sum(range(5_000)))
    sample = query.sql("SELECT reason, length(payload) AS size FROM dead_letters LIMIT 5", settings=settings)
    assert all(sample["reason"].str.len() > 0)
