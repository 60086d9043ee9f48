"""Where the sink worker cuts a partition's records into batches.

A batch is one partition's records from its last commit up to a cut. The cut comes
at ``max_rows`` (estimated: a metrics record carries about one point per
:data:`POINT_BYTES`), at ``max_bytes``, or when the oldest record has waited
``max_seconds`` -- unless a write-ahead intent already says where this batch ends:
a replay must cut exactly where the crashed attempt did, so that it sends the same
deduplication token.

When one partition's batch is due, every partition whose oldest record has waited
:data:`JOIN_FRACTION` of ``max_seconds`` joins the same flush: each flush costs one
intent insert and one ``producer_streams`` insert however many partitions it carries
(and every ClickHouse insert has a fixed cost of several milliseconds of CPU), so
partitions that drift apart by a few milliseconds should not each pay for a flush of
their own.  Joining only ever cuts a batch earlier, never later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fleetlog.config import SinkConfig
from fleetlog.events import Record

__all__ = ["JOIN_FRACTION", "POINT_BYTES", "BatchLimits", "PartitionBuffer", "estimated_rows"]

# Bytes a point takes in a metrics record (name index 4 + step 8 + time 8 + value 8).
POINT_BYTES = 28
# How much of max_seconds a partition's oldest record must have waited to join another's flush.
JOIN_FRACTION = 0.5


def estimated_rows(record: Record) -> int:
    """Rows a record becomes: its points for metrics, about one for anything else."""
    return max(1, len(record.value) // POINT_BYTES)


@dataclass(frozen=True, kw_only=True)
class BatchLimits:
    """When a partition's pending records become a batch (``FLEETLOG_SINK_BATCH_*``)."""

    max_rows: int = SinkConfig().batch_rows  # defaults declared once, with FLEETLOG_SINK_BATCH_*
    max_bytes: int = SinkConfig().batch_bytes
    max_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1 or self.max_seconds <= 0:
            raise ValueError("batch limits must be positive")


@dataclass
class PartitionBuffer:
    """One partition's records read since its last commit, and the intents found for them.

    ``intents`` maps a batch's first offset to its last, as recorded in ``sink_batches``
    by whoever cut it before; ``loaded`` says whether they were looked up since this
    worker got the partition.
    """

    records: list[Record] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    since: float = 0.0
    intents: dict[int, int] = field(default_factory=dict)
    loaded: bool = False

    def append(self, records: list[Record], now: float | None = None) -> None:
        if not records:
            return
        if not self.records:
            self.since = time.monotonic() if now is None else now
        self.records.extend(records)
        self.rows += sum(estimated_rows(r) for r in records)
        self.nbytes += sum(len(r.value) for r in records)

    def full(self, limits: BatchLimits) -> bool:
        return self.rows >= limits.max_rows or self.nbytes >= limits.max_bytes

    def due(self, limits: BatchLimits, now: float) -> bool:
        return bool(self.records) and (self.full(limits) or now - self.since >= limits.max_seconds)

    def joins(self, limits: BatchLimits, now: float) -> bool:
        """Whether this partition's batch rides along with a flush another partition started."""
        return bool(self.records) and (self.full(limits) or now - self.since >= limits.max_seconds * JOIN_FRACTION)

    def take(self, limits: BatchLimits) -> list[Record]:
        """The next batch, or nothing while an intent's cut is not fully read yet."""
        if not self.records:
            return []
        cut = self.intents.pop(self.records[0].offset, None)
        if cut is not None:
            n = next((i for i, r in enumerate(self.records) if r.offset >= cut), len(self.records))
            if n == len(self.records):
                self.intents[self.records[0].offset] = cut
                return []  # the replay must cover exactly what the intent covered: wait for the rest
            if self.records[n].offset == cut:
                n += 1  # else the cut record is gone (compacted away): stop before the records after it
        else:
            n, rows, nbytes = 0, 0, 0
            while n < len(self.records) and (n == 0 or (rows < limits.max_rows and nbytes < limits.max_bytes)):
                rows += estimated_rows(self.records[n])
                nbytes += len(self.records[n].value)
                n += 1
        batch, self.records = self.records[:n], self.records[n:]
        self._recount()
        return batch

    def _recount(self) -> None:
        self.rows = sum(estimated_rows(r) for r in self.records)
        self.nbytes = sum(len(r.value) for r in self.records)
        if not self.records:
            self.since = 0.0
