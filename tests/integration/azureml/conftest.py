"""The notebooks' world: FLEETLOG_* in the environment (no settings passed), a sink, a scratch folder as cwd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.config import Settings
from fleetlog.stack import SINK, LocalStack


@pytest.fixture
def notebook_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """What a user's shell would hold, so that ``Workspace.from_config()`` needs no argument."""
    for name, value in {
        "FLEETLOG_HOME": str(settings.home),
        "FLEETLOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "FLEETLOG_TOPIC_PREFIX": settings.topics.prefix,
        "FLEETLOG_HTTP_PORT": str(settings.store.http_port),
        "FLEETLOG_FLUSH_INTERVAL_SECONDS": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in [k for k in os.environ if k.startswith("FLEETLOG_RUN") or k == "FLEETLOG_SUBMITTED"]:
        monkeypatch.delenv(name)
    work = tmp_path / "notebook"
    work.mkdir()
    monkeypatch.chdir(work)
    stack = LocalStack(settings)
    stack.start(SINK)
    yield work
    stack.stop(SINK)
