"""What a sink is: the contract between the sink worker (the Kafka side) and a store.

The worker (:class:`~fleetlog.sinks.worker.SinkWorker`) reads Kafka, cuts each partition's
records into a :class:`Batch` (:mod:`.batching`), and hands every batch due at a flush
to :meth:`Sink.write` in one call.  It commits their offsets only after ``write``
returned, so the checkpoint order is always *write the batches, then commit the offsets*.

Commit protocol of one flush, strictly in this order:

1. **intent** (inside ``write``): record which offsets each batch covers, for all of
   the flush's partitions in one insert (``sink_batches``);
2. **rows** (inside ``write``): each partition's rows, every table's insert carrying the
   batch's :attr:`Batch.token` (``topic:partition:first-last``) as its
   ``insert_deduplication_token``;
3. **landed** (inside ``write``): one ``producer_streams`` insert marking the producer
   sequence numbers of every batch of the flush;
4. **commit** (the worker): ``last + 1`` for every partition of the flush.

Each ClickHouse insert costs milliseconds of CPU however small, so per-flush rather
than per-partition bookkeeping is most of what batching saves.

A crash anywhere replays from the last commit.  The replaying worker (this one or
another after a rebalance) asks :meth:`Sink.recorded_cuts` where an earlier attempt
cut the partition, cuts the batch at the same last offset, and so sends the same
token: ClickHouse drops the insert it already has.  Nothing is lost (commit follows
write) and nothing is duplicated (same batch, same token).

Errors, the two kinds a sink may let out of ``write`` and ``recorded_cuts``:

* **bad records never escape**: a record that cannot be decoded, converted or
  inserted is the sink's to park (a dead letter with the reason) so that the
  partition moves on;
* **the store cannot take the batches now** (overload, an outage, a refusal an
  operator must fix): the sink raises :class:`SinkBackpressure` with
  ``retry_after_seconds``.  A sink never sleeps inside ``write``: the worker pauses
  every partition, seeks each back to its last commit, drops what it held, and
  resumes reading after the delay -- Kafka's retention is the buffer.  Batches of
  that flush that did land are replayed under the same token, and dropped.

Anything else a sink raises is a bug: it stops the worker, and the next one replays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from fleetlog.errors import StoreError
from fleetlog.events import Record

__all__ = ["Batch", "Sink", "SinkBackpressure", "batch_token"]


def batch_token(records: Sequence[Record]) -> str:
    """The identity of a partition's run of records, ``topic:partition:first-last``."""
    return f"{records[0].topic}:{records[0].partition}:{records[0].offset}-{records[-1].offset}"


@dataclass(frozen=True, slots=True)
class Batch:
    """One partition's records, in offset order, from its last commit up to a cut."""

    records: Sequence[Record]

    def __post_init__(self) -> None:
        if not self.records:
            raise ValueError("a Batch holds at least one record")

    @property
    def topic(self) -> str:
        return self.records[0].topic

    @property
    def partition(self) -> int:
        return self.records[0].partition

    @property
    def first_offset(self) -> int:
        return self.records[0].offset

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset

    @property
    def token(self) -> str:
        """The batch's identity and its insert deduplication token: the same cut, the same token."""
        return batch_token(self.records)

    def __len__(self) -> int:
        return len(self.records)


class SinkBackpressure(StoreError):
    """The store cannot take these batches now; read them again in ``retry_after_seconds``.

    ``retriable`` says whether waiting is expected to be enough (overload, outage) or an
    operator must fix something first (permissions, a missing table): the worker retries
    either way, but logs the second kind as an error.  The store's own error is the
    ``__cause__``.
    """

    def __init__(self, message: str, *, retry_after_seconds: float, retriable: bool = True) -> None:
        super().__init__(message, retriable=retriable)
        self.retry_after_seconds = retry_after_seconds


class Sink(ABC):
    """Where the worker's batches go.  Methods block (the worker calls them in a thread).

    ``stats`` are the sink's counters (rows, inserts, dead letters); ``fleetlog status``
    shows them beside the worker's own.
    """

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    @abstractmethod
    def write(self, batches: Sequence[Batch]) -> None:
        """Make ``batches`` (at most one per partition) durable, or raise :class:`SinkBackpressure`.

        Returning means every batch landed: the worker commits their offsets next.
        """

    def recorded_cuts(self, topic: str, partition: int, first_offset: int) -> dict[int, int]:
        """``{first: last}`` offsets of batches an earlier attempt wrote from ``first_offset`` on.

        The worker cuts a replay at exactly these offsets.  A sink that keeps no record of
        its cuts returns none, and its batches are cut afresh.
        """
        return {}

    def on_assigned(self, partitions: Collection[tuple[str, int]]) -> None:  # noqa: B027 (optional hook)
        """The worker was given ``(topic, partition)`` pairs: forget anything cached about the store.

        Another worker may have written to it meanwhile.
        """
