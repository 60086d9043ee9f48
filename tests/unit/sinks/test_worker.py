"""The ClickHouse sink and the worker's flush, without Kafka: idempotent batches, refused rows, backpressure.

Runs on both backends (in-process chDB, and HTTP through the endpoint as to a server).
The records carry no producer session, so only the deduplication tokens stop repeats.
The same contract through a real broker is tests/integration/test_sink_contract.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import msgpack
import numpy as np
import pytest
from aiokafka import TopicPartition
from fleetlog.sinks.base import Batch, SinkBackpressure
from fleetlog.sinks.clickhouse import ClickHouseSink
from fleetlog.sinks.rows import Record
from fleetlog.sinks.worker import SinkWorker

from fleetlog.config import Settings
from fleetlog.errors import StoreError, StoreUnavailable
from fleetlog.events import Envelope, Source, encode, encode_metrics
from fleetlog.retry import Backoff
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
def sink(store, tmp_path) -> ClickHouseSink:
    return ClickHouseSink(Settings(home=tmp_path), store.client)


@pytest.fixture
def worker(sink: ClickHouseSink, tmp_path) -> SinkWorker:
    return SinkWorker(Settings(home=tmp_path), sink)


def count(store, sql: str) -> int:
    return store.owner.query(sql).result_rows[0][0]


def test_a_replayed_batch_adds_nothing(store, sink: ClickHouseSink) -> None:
    batch = [good(i) for i in range(5)]
    for _ in range(3):
        sink.write([Batch(batch)])
    sink.write([Batch(batch[:2])])  # a different cut is a different batch: only a replay must repeat the cut
    assert count(store, "SELECT count() FROM metric_points") == 70


def test_refused_rows_go_to_dead_letters_and_the_rest_lands(store, sink: ClickHouseSink) -> None:
    batch = [good(0), bad_alert(1), good(2), spread(3), garbage(4), *[good(i) for i in range(5, 12)]]
    sink.write([Batch(batch)])
    assert sink.stats["points_inserted"] == 90 and sink.stats["dead_letters"] == 2
    sink.write([Batch(batch)])  # and the replay repeats none of it
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
    sink = ClickHouseSink(Settings(home=tmp_path), client)
    with pytest.raises(SinkBackpressure) as caught:
        sink.write([Batch([good(0)])])
    assert isinstance(caught.value.__cause__, StoreUnavailable) and caught.value.retriable
    first = caught.value.retry_after_seconds
    with pytest.raises(SinkBackpressure) as again:
        sink.write([Batch([good(0)])])
    assert 0 < first < again.value.retry_after_seconds  # one more failure in a row: a longer wait


class _Consumer:
    """What the worker's flush needs of a consumer: commits, assignment, pause, resume and seek."""

    def __init__(self, assigned: set | None = None) -> None:
        self.committed: dict = {}
        self.assigned = assigned
        self.paused: set = set()
        self.seeks: dict = {}

    async def commit(self, offsets: dict) -> None:
        self.committed.update({tp: o.offset for tp, o in offsets.items()})

    def assignment(self) -> set:
        return set(self.committed) if self.assigned is None else self.assigned

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


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


class _Recording(ClickHouseSink):
    """The ClickHouse sink, noting the topic of every batch it is handed, in order."""

    def __init__(self, settings: Settings, client: object) -> None:
        super().__init__(settings, client)  # type: ignore[arg-type]
        self.order: list[str] = []

    def write(self, batches: Sequence[Batch]) -> None:
        self.order += [b.topic for b in batches]
        super().write(batches)


def test_derived_rows_wait_their_own_longer_window_and_raw_points_go_first(store, tmp_path) -> None:
    settings = Settings.build(home=tmp_path, topic_prefix="t", sink_batch_seconds=0.5, sink_derived_batch_seconds=2.0)
    sink = _Recording(settings, store.client)
    worker = SinkWorker(settings, sink)
    derived, metrics = TopicPartition("t.derived", 0), TopicPartition("t.metrics", 0)
    as_derived = Record("t.derived", 0, 0, b"r1", good(0).value)  # what it carries does not matter here
    worker._accept({derived: [as_derived], metrics: [good(0)]})  # derived first: the flush reorders
    order = sink.order
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

    async def commit(self, offsets: dict) -> None:
        from aiokafka.errors import CommitFailedError

        raise CommitFailedError("the group has rebalanced")


def test_a_worker_the_group_moved_on_from_writes_nothing(store, worker: SinkWorker) -> None:
    kept, lost = TopicPartition("t.metrics", 0), TopicPartition("t.metrics", 1)
    worker._accept({kept: [good(5), good(6)], lost: [good(7)]})
    consumer = _StaleConsumer(assigned={kept})
    assert asyncio.run(worker._flush_once(consumer, everything=True))
    assert worker.stats["fenced"] == 1 and worker.stats["inserts"] == 0
    assert count(store, "SELECT count() FROM metric_points") == 0
    assert count(store, "SELECT count() FROM sink_batches") == 0  # no intent either: the new owner cuts freely
    assert worker.pending == {} and consumer.seeks == {kept: 5}  # a partition still ours is read again


class _FailingMidFlush(ClickHouseSink):
    """The ClickHouse sink over a store that fails once, after the flush's intents and first partition landed."""

    def __init__(self, settings: Settings, client: object) -> None:
        super().__init__(settings, client, backoff=Backoff(initial_seconds=0.05))  # type: ignore[arg-type]
        self.failures = 1

    def _insert_rows(self, batch: Batch) -> dict:
        if batch.partition == 1 and self.failures:
            self.failures -= 1
            raise StoreError("the store went away mid-flush (test)", retriable=True)
        return super()._insert_rows(batch)


def test_backpressure_pauses_seeks_back_to_the_last_commit_and_resumes_without_loss(store, tmp_path) -> None:
    settings = Settings.build(home=tmp_path, topic_prefix="t")
    sink = _FailingMidFlush(settings, store.client)
    worker = SinkWorker(settings, sink)
    tps = [TopicPartition("t.metrics", p) for p in (0, 1)]
    log = {tp: [Record(tp.topic, tp.partition, o, b"r1", good(o).value) for o in range(10, 14)] for tp in tps}
    consumer = _Consumer(assigned=set(tps))

    async def scenario() -> None:
        worker._accept(log)
        for p in worker.pending.values():
            p.since -= settings.sink.batch_seconds  # due
        await worker._maybe_flush(consumer)
        # Partition 0 landed, partition 1 did not: neither is committed, both are read again from 10.
        assert worker.paused and consumer.paused == set(tps) and consumer.seeks == {tp: 10 for tp in tps}
        assert worker.pending == {} and consumer.committed == {tp: 10 for tp in tps}
        assert worker.stats["store_retries"] == 1 and worker.stats["paused"] == 1
        assert count(store, "SELECT count() FROM metric_points") == 40
        deadline = time.monotonic() + 10
        while worker.paused:  # the sink asked for about 50 ms
            assert time.monotonic() < deadline, "the worker never resumed"
            await worker._maybe_flush(consumer)
            await asyncio.sleep(0.01)
        assert consumer.paused == set() and worker.stats["paused"] == 1  # resumed; nothing written yet
        worker._accept({tp: log[tp][consumer.seeks[tp] - 10 :] for tp in tps})  # Kafka reads from the seek
        await worker._maybe_flush(consumer)  # back from a pause: flushed at once, not after the batch window

    asyncio.run(scenario())
    assert consumer.committed == {tp: 14 for tp in tps} and worker.stats["paused"] == 0
    assert worker.stats["replayed_batches"] == 2  # both cut where the failed attempt recorded
    assert count(store, "SELECT count() FROM metric_points") == 2 * 4 * 10  # partition 0's repeat was dropped
