"""The sink worker's store side, without Kafka: idempotent batches and rows ClickHouse refuses.

Runs on both backends (in-process chDB, and HTTP through the endpoint as to a server).
The records carry no producer session, so only the deduplication tokens stop repeats.
"""

from __future__ import annotations

import asyncio
import time

import msgpack
import numpy as np
import pytest
from aiokafka import TopicPartition
from fleetlog.sinks.rows import Record
from fleetlog.sinks.worker import SinkWorker

from fleetlog.config import Settings
from fleetlog.errors import StoreUnavailable
from fleetlog.events import Envelope, Source, encode, encode_metrics
from fleetlog.store.client import connect
from fleetlog.store.endpoint import HttpEndpoint

NOW_MS = int(time.time() * 1000)


def points(offset: int, ts_ms: np.ndarray, run: str = "r1") -> Record:
    n = len(ts_ms)
    env = Envelope(kind="metrics", run_id=run, source=Source(host="h"), sent_at=time.time())
    steps = np.arange(offset * 1000, offset * 1000 + n)
    [(_, message)] = list(encode_metrics(env, ["loss"], np.zeros(n, np.uint32), steps, ts_ms, np.full(n, 0.5)))
    return Record("t.metrics", 0, offset, run.encode(), message)


def good(offset: int) -> Record:
    return points(offset, NOW_MS + np.arange(10))


def spread(offset: int) -> Record:
    """200 months of points in one record: more partitions than one INSERT block may touch."""
    return points(offset, 1_000_000_000_000 + np.arange(200, dtype=np.int64) * 31 * 86_400_000)


def bad_alert(offset: int) -> Record:
    body = {"table": "alerts", "columns": {"run_id": ["r1"], "rank": ["not a number"]}}
    env = Envelope(kind="rows", run_id="r1", sent_at=time.time(), body=body)
    return Record("t.metrics", 0, offset, b"r1", encode(env))


def garbage(offset: int) -> Record:
    return Record("t.metrics", 0, offset, b"r1", msgpack.packb({"v": 1, "kind": "metrics"}))


@pytest.fixture
def worker(store, tmp_path) -> SinkWorker:
    return SinkWorker(Settings(home=tmp_path), store.client)


def count(store, sql: str) -> int:
    return store.owner.query(sql).result_rows[0][0]


def test_a_replayed_batch_adds_nothing(store, worker: SinkWorker) -> None:
    batch = [good(i) for i in range(5)]
    for _ in range(3):
        worker._insert(batch)
    worker._insert(batch[:2])  # a different cut is a different batch: only a replay must repeat the cut
    assert count(store, "SELECT count() FROM metric_points") == 70


def test_refused_rows_go_to_dead_letters_and_the_rest_lands(store, worker: SinkWorker) -> None:
    batch = [good(0), bad_alert(1), good(2), spread(3), garbage(4), *[good(i) for i in range(5, 12)]]
    worker._insert(batch)
    assert worker.stats["points_inserted"] == 90 and worker.stats["dead_letters"] == 2
    worker._insert(batch)  # and the replay repeats none of it
    assert count(store, "SELECT count() FROM metric_points") == 9 * 10
    assert count(store, "SELECT count() FROM alerts") == 0
    dead = store.owner.query("SELECT offset, reason FROM dead_letters ORDER BY offset").result_rows
    assert [offset for offset, _ in dead] == [1, 3, 4]
    assert "insert into alerts refused" in dead[0][1] and "Code: 6" in dead[0][1]
    assert "insert into metric_points refused" in dead[1][1] and "partitions for single INSERT block" in dead[1][1]
    assert "missing field" in dead[2][1]


def test_a_store_gone_away_is_retriable(store, tmp_path) -> None:
    if store.backend != "http":
        pytest.skip("an in-process store cannot go away")
    endpoint = HttpEndpoint(store.owner, port=0)
    endpoint.start()
    writer = endpoint.credentials.writer
    client = connect(f"http://{writer.name}:{writer.password}@127.0.0.1:{endpoint.address[1]}/{store.owner.database}")
    endpoint.stop()
    with pytest.raises(StoreUnavailable):
        SinkWorker(Settings(home=tmp_path), client)._insert([good(0)])


class _Consumer:
    """What ``_flush_once`` needs of a consumer: commits and assignment."""

    def __init__(self) -> None:
        self.committed: dict = {}

    async def commit(self, offsets: dict) -> None:
        self.committed.update({tp: o.offset for tp, o in offsets.items()})

    def assignment(self) -> set:
        return set(self.committed)


def sessioned(partition: int, offset: int, run: str, seq: int) -> Record:
    env = Envelope(kind="metrics", run_id=run, source=Source(host="h"), sent_at=time.time(), session="s1", seq=seq)
    [(_, message)] = list(
        encode_metrics(env, ["loss"], np.zeros(3, np.uint32), np.arange(3), NOW_MS + np.arange(3), np.ones(3))
    )
    return Record("t.metrics", partition, offset, run.encode(), message)


def test_one_flush_marks_every_partitions_streams_in_one_insert_before_committing(store, worker: SinkWorker) -> None:
    consumer = _Consumer()
    recs = {TopicPartition("t.metrics", p): [sessioned(p, o, f"r{p}", o) for o in range(3)] for p in range(3)}
    worker._accept(recs)
    assert asyncio.run(worker._flush_once(consumer, everything=True))
    assert consumer.committed == {tp: 3 for tp in recs}
    assert worker.stats["inserts"] == 1 + 3 + 1  # one intent insert, one per partition's points, one producer_streams
    streams = store.owner.query("SELECT run_id, max(max_seq) FROM producer_streams GROUP BY run_id ORDER BY run_id")
    assert streams.result_rows == [("r0", 2), ("r1", 2), ("r2", 2)]
    worker._accept({tp: [sessioned(tp.partition, 9, f"r{tp.partition}", 1)] for tp in recs})  # resent: a repeat
    assert asyncio.run(worker._flush_once(consumer, everything=True))
    assert worker.stats["duplicates_dropped"] == 3
    assert count(store, "SELECT count() FROM metric_points") == 3 * 3 * 3


def test_derived_rows_wait_their_own_longer_window_and_raw_points_go_first(store, tmp_path) -> None:
    settings = Settings(home=tmp_path, topic_prefix="t", sink_batch_seconds=0.5, sink_derived_batch_seconds=2.0)
    worker = SinkWorker(settings, store.client)
    derived, metrics = TopicPartition("t.derived", 0), TopicPartition("t.metrics", 0)
    as_derived = Record("t.derived", 0, 0, b"r1", good(0).value)  # what it carries does not matter here
    worker._accept({derived: [as_derived], metrics: [good(0)]})  # derived first: the flush reorders
    order: list[str] = []
    insert = worker._insert_data
    worker._insert_data = lambda batch: (order.append(batch[0].topic), insert(batch))[1]  # type: ignore[method-assign]
    consumer = _Consumer()
    now = time.monotonic()
    for tp in (derived, metrics):
        worker.pending[tp].since = now - 0.6  # raw points due (0.5 s); derived rows not even half of 2 s
    assert asyncio.run(worker._flush_once(consumer, everything=False))
    assert consumer.committed == {metrics: 1} and order == ["t.metrics"]
    worker._accept({metrics: [good(1)]})
    worker.pending[derived].since = worker.pending[metrics].since = time.monotonic() - 1.1  # derived joins now
    assert asyncio.run(worker._flush_once(consumer, everything=False))
    assert consumer.committed == {metrics: 2, derived: 1} and order == ["t.metrics", "t.metrics", "t.derived"]


class _StaleConsumer(_Consumer):
    """A member the group has moved on from: it may still hold partitions it was reading."""

    def __init__(self, assigned: set) -> None:
        super().__init__()
        self.assigned, self.seeks = assigned, {}

    async def commit(self, offsets: dict) -> None:
        from aiokafka.errors import CommitFailedError

        raise CommitFailedError("the group has rebalanced")

    def assignment(self) -> set:
        return self.assigned

    def seek(self, tp, offset: int) -> None:
        self.seeks[tp] = offset


def test_a_worker_the_group_moved_on_from_writes_nothing(store, worker: SinkWorker) -> None:
    kept, lost = TopicPartition("t.metrics", 0), TopicPartition("t.metrics", 1)
    worker._accept({kept: [good(5), good(6)], lost: [good(7)]})
    consumer = _StaleConsumer(assigned={kept})
    assert asyncio.run(worker._flush_once(consumer, everything=True))
    assert worker.stats["fenced"] == 1 and worker.stats["inserts"] == 0
    assert count(store, "SELECT count() FROM metric_points") == 0
    assert count(store, "SELECT count() FROM sink_batches") == 0  # no intent either: the new owner cuts freely
    assert worker.pending == {} and consumer.seeks == {kept: 5}  # a partition still ours is read again
