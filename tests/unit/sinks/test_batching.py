"""Where a partition's records are cut into batches: rows, bytes, age, and recorded intents."""

from __future__ import annotations

from fleetlog.sinks.base import batch_token
from fleetlog.sinks.batching import POINT_BYTES, BatchLimits, PartitionBuffer

from fleetlog.events import Record


def records(first: int, n: int, points: int = 100) -> list[Record]:
    return [Record("t.metrics", 2, first + i, b"r", b"x" * (points * POINT_BYTES)) for i in range(n)]


def test_cut_by_rows_bytes_and_age() -> None:
    p = PartitionBuffer()
    p.append(records(0, 10), now=100.0)
    by_rows = BatchLimits(max_rows=350, max_bytes=1 << 30, max_seconds=5)
    assert p.full(by_rows) and p.due(by_rows, 100.0)
    assert [r.offset for r in p.take(by_rows)] == [0, 1, 2, 3]  # 400 rows: the record that reached the bound
    by_bytes = BatchLimits(max_rows=10**9, max_bytes=2 * 100 * POINT_BYTES, max_seconds=5)
    assert [r.offset for r in p.take(by_bytes)] == [4, 5]
    loose = BatchLimits(max_rows=10**9, max_bytes=1 << 30, max_seconds=5)
    assert not p.due(loose, 104.0) and p.due(loose, 105.0)
    assert [r.offset for r in p.take(loose)] == [6, 7, 8, 9]
    assert p.take(loose) == [] and p.rows == p.nbytes == 0


def test_one_oversized_record_is_still_a_batch() -> None:
    p = PartitionBuffer()
    p.append(records(0, 2, points=10_000))
    assert len(p.take(BatchLimits(max_rows=10, max_bytes=10, max_seconds=1))) == 1


def test_a_recorded_intent_cuts_the_replay_where_the_first_attempt_did() -> None:
    p = PartitionBuffer(intents={3: 7}, loaded=True)
    limits = BatchLimits(max_rows=100, max_bytes=1 << 30, max_seconds=1)
    p.append(records(3, 3))
    assert p.take(limits) == []  # offsets 3-5 read, the intent covers 3-7: wait for the rest
    p.append(records(6, 5))
    batch = p.take(limits)
    assert (batch[0].offset, batch[-1].offset) == (3, 7) and batch_token(batch) == "t.metrics:2:3-7"
    assert [r.offset for r in p.take(limits)] == [8]  # no intent beyond: cut by the limits again


def test_an_intent_whose_last_record_is_gone_still_cuts() -> None:
    p = PartitionBuffer(intents={0: 4}, loaded=True)
    p.append(records(0, 3) + records(6, 2))  # 3-5 gone (compaction): the replay stops before 6
    assert [r.offset for r in p.take(BatchLimits())] == [0, 1, 2]


def test_a_partition_close_to_due_joins_anothers_flush() -> None:
    limits = BatchLimits(max_rows=10**9, max_bytes=1 << 30, max_seconds=1.0)
    old, young = PartitionBuffer(), PartitionBuffer()
    old.append(records(0, 1), now=100.0)
    young.append(records(0, 1), now=100.6)
    assert old.due(limits, 101.0) and not young.due(limits, 101.0)
    assert young.joins(limits, 101.1) and not young.joins(limits, 101.0)  # waited half the window: rides along
    assert not PartitionBuffer().joins(limits, 101.0)
