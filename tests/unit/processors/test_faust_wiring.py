"""The Faust layer without a broker: app settings, table routing, and the rows-before-state order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fleetlog.processors.app import app_id, build_app, faust_settings
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine
from fleetlog.processors.core.state import key
from fleetlog.processors.pipeline import Pipeline
from fleetlog.processors.tables import RoutedTable, _partition, routed_to
from fleetlog.processors.worker import MARKER, ProcessorWorker
from processor_helpers import T0

from fleetlog.config import Settings
from fleetlog.events import Envelope, Source, encode_metrics


def test_app_settings_follow_the_pitfalls_list(tmp_path: Path):
    settings = Settings.build(home=tmp_path, topic_prefix="t1", kafka_bootstrap="a:1,b:2")
    conf = faust_settings(settings, partitions=6)
    assert conf["broker"] == ["kafka://a:1", "kafka://b:2"] and conf["topic_partitions"] == 6
    assert conf["processing_guarantee"] == "at_least_once" and conf["table_standby_replicas"] == 0
    assert conf["consumer_auto_offset_reset"] == "earliest" and conf["web_enabled"] is False
    app, _ = build_app(settings, partitions=6)
    assert app.conf.id == app_id(settings) == "t1-processor"
    assert {t.name for t in app.tables.values()} == {"runs", "state"}
    assert all(isinstance(t, RoutedTable) and t.partitions == 6 for t in app.tables.values())
    agent = next(iter(app.agents.values()))
    assert agent.concurrency == 1
    assert set(agent.channel.topics) == {"t1.metrics", "t1.events"}


def test_routed_tables_refuse_writes_without_a_partition(tmp_path: Path):
    app, _ = build_app(Settings.build(home=tmp_path, topic_prefix="t2"), partitions=4)
    table = app.tables["runs"]
    with pytest.raises(RuntimeError, match="outside routed_to"):
        table.partition_for_key(b"k")
    with routed_to(3):
        assert table.partition_for_key(b"k") == 3
        with routed_to(1):
            assert table.partition_for_key(b"k") == 1
        assert table.partition_for_key(b"k") == 3


class FakeTable(dict):
    """Records which changelog partition each write would go to."""

    def __init__(self, log: list):
        super().__init__()
        self.data = self
        self.log = log

    def __setitem__(self, k, v):
        self.log.append(("set", k, _partition.get()))
        super().__setitem__(k, v)

    def __delitem__(self, k):
        self.log.append(("del", k, _partition.get()))
        super().__delitem__(k)


class FakeTopic:
    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    async def send(self, *, key, value, force):
        self.log.append(("send", self.name, key))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class FakeEvent:
    def __init__(self, topic, partition, offset, key, value):
        self.message = type(
            "M", (), {"topic": topic, "partition": partition, "offset": offset, "key": key, "value": value}
        )


def test_rows_are_acknowledged_before_state_is_written_to_the_run_partition(tmp_path: Path):
    log: list = []
    settings = Settings.build(home=tmp_path, topic_prefix="t")
    pipeline = Pipeline(RunEngine(ProcessorConfig()), metrics_topic="t.metrics", events_topic="t.events")
    worker = ProcessorWorker(
        None,
        settings,
        pipeline,
        runs=FakeTable(log),
        state=FakeTable(log),
        derived=FakeTopic("derived", log),
        alerts=FakeTopic("alerts", log),
        dead_letters=FakeTopic("dead", log),
    )
    env = Envelope(kind="metrics", run_id="r", source=Source())
    [(_, msg)] = encode_metrics(
        env, ["loss"], np.zeros(3, np.uint32), np.arange(3), T0 + np.arange(3), np.array([1, np.nan, 1])
    )
    bad_rank = Envelope(kind="metrics", run_id="x", source=Source(rank=3, world_size=2))  # only processors refuse it
    [(_, bad)] = encode_metrics(bad_rank, ["loss"], np.zeros(1, np.uint32), np.arange(1), T0 + np.arange(1), np.ones(1))
    events = [FakeEvent("t.metrics", 2, 0, b"r", msg), FakeEvent("t.metrics", 1, 5, b"x", bad)]
    asyncio.run(worker.handle(events))
    kinds = [entry[0] for entry in log]
    assert kinds.index("set") > max(i for i, k in enumerate(kinds) if k == "send")
    assert {("send", "dead", b"-dead-letters-"), ("send", "alerts", b"r"), ("send", "derived", b"r")} <= set(log)
    assert {p for kind, _, p in log if kind == "set"} == {2}
    assert worker.due["r"][1] == 2

    # Forgetting a run deletes its keys, then re-marks the partition so it never ends in a tombstone.
    log.clear()
    worker._write_state(2, {key("run", "r"): None})
    assert [entry[0] for entry in log] == ["del", "set"] and log[1][1] == MARKER
