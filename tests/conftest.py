"""Shared fixtures: one real Kafka broker per test session, started from the JARs.

A missing Java/Maven or a broker that does not start fails the session (it never
skips): the integration tests are the point of ``make test``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath) or "faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(state_dir=tmp_path_factory.mktemp("kafka"), port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def settings(kafka: LocalKafka, tmp_path: Path) -> Settings:
    """Fresh home, topics and endpoint port per test, on the session's broker."""
    return Settings.build(
        home=tmp_path / "home",
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.5,
    )


@pytest.fixture
def stack(settings: Settings) -> Iterator[LocalStack]:
    """A sink process for this test (the broker is the session's)."""
    st = LocalStack(settings)
    st.start(SINK)
    yield st
    st.stop(SINK)


@pytest.fixture
def sdk_env(settings: Settings) -> dict[str, str]:
    """Environment for child processes that log through the SDK."""
    return {
        **os.environ,
        "FLEETLOG_HOME": str(settings.home),
        "FLEETLOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "FLEETLOG_TOPIC_PREFIX": settings.topics.prefix,
        "FLEETLOG_HTTP_PORT": str(settings.store.http_port),
    }
