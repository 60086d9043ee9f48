"""The outbox: what the streams logged, encoded into Kafka messages and numbered, oldest first.

Sequence numbers are given here and nowhere else, per (run, topic), in the order the
data was logged; each message keeps its number whether it is sent live or travels
through the spool.  The sink drops any message whose number is not above the highest
one that landed, so the sender must deliver each stream's numbers in order: this
queue is strictly first in, first out, and the sender only ever moves its head
(to Kafka, or to the spool's tail).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._spool import Frame

from fleetlog.config import Settings
from fleetlog.events import Envelope, encode, encode_metrics

__all__ = ["Outbox", "Stream", "groups"]

log = logging.getLogger("fleetlog")


class Stream:
    """What one run contributes to the sender: its envelope, points and events.

    Sequence numbers live in the sender, per (run, topic): each topic's messages
    of one run share one partition and arrive in order only within it, and a run
    opened twice in one session (resumed) must keep counting, not restart.
    """

    def __init__(self, template: Envelope, buffer: MetricBuffer) -> None:
        self.template = template
        self.buffer = buffer
        self.events: collections.deque[Envelope] = collections.deque()
        self.alive = True
        self.periodic: list[Callable[[], None]] = []


class Outbox:
    """Encoded frames waiting for the sender, and the sequence counters that numbered them."""

    def __init__(self, settings: Settings, session: str, stats: collections.Counter[str], max_request_bytes: int):
        self.settings = settings
        self.session = session
        self.stats = stats
        self.max_request_bytes = max_request_bytes
        self.frames: collections.deque[Frame] = collections.deque()
        self.nbytes = 0  # of message values in ``frames``
        self._seq: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def head(self, max_bytes: int) -> list[Frame]:
        """The oldest frames, at least one, up to ``max_bytes`` of message values (not removed)."""
        group, size = [], 0
        for frame in self.frames:
            if group and size + len(frame.value) > max_bytes:
                break
            group.append(frame)
            size += len(frame.value)
        return group

    def pop(self, count: int) -> None:
        for _ in range(count):
            self.nbytes -= len(self.frames.popleft().value)

    def take_all(self) -> list[Frame]:
        frames = list(self.frames)
        self.frames.clear()
        self.nbytes = 0
        return frames

    def _add(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.nbytes += len(frame.value)

    def collect(self, streams: Iterable[Stream]) -> bool:
        """Drain every stream into numbered frames at the tail; True when a buffer had overflowed.

        An overflow means the training loop logged faster than the sender shipped (policy
        ``spool``): the sender then moves the excess to disk.
        """
        overflowed = False
        for stream in streams:
            self._collect_events(stream)
            points = stream.buffer.drain()
            if points is None:
                continue
            overflowed |= points.overflowed
            s = self.settings
            first = self._seq.get((stream.template.run_id, s.metrics_topic), 0)
            env = replace(stream.template, kind="metrics", session=self.session, seq=first, sent_at=time.time())
            chunks = encode_metrics(
                env,
                points.names,
                points.name_idx,
                points.step,
                points.ts_ms,
                points.value,
                max_bytes=s.kafka.max_message_bytes,
            )
            count = 0
            for n, msg in chunks:
                self._add(Frame(s.metrics_topic, env.key, msg, n))
                count += 1
            self._seq[(env.run_id, s.metrics_topic)] = first + count
        return overflowed

    def _collect_events(self, stream: Stream) -> None:
        topic = self.settings.events_topic
        while stream.events:
            env = replace(stream.events.popleft(), session=self.session)
            seq = self._seq.get((env.run_id, topic), 0)
            value = encode(replace(env, seq=seq))
            if len(value) > self.max_request_bytes:  # could never be sent: it would block everything behind it
                self.stats["dropped_oversized"] += 1
                log.error(
                    "fleetlog dropped a %s event of %d bytes (limit %d)", env.kind, len(value), self.max_request_bytes
                )
                continue
            self._seq[(env.run_id, topic)] = seq + 1
            self._add(Frame(topic, env.key, value))


def groups(frames: list[Frame], max_bytes: int) -> Iterator[list[Frame]]:
    """Consecutive runs of ``frames`` of at most ``max_bytes`` of values (at least one frame each)."""
    group: list[Frame] = []
    size = 0
    for frame in frames:
        if group and size + len(frame.value) > max_bytes:
            yield group
            group, size = [], 0
        group.append(frame)
        size += len(frame.value)
    if group:
        yield group
