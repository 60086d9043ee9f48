"""The sender: one background thread, one asyncio loop, one AIOKafkaProducer.

The training thread never touches the network.  It appends to buffers; this
thread wakes every ``flush_interval_seconds`` (or early when a buffer fills),
turns buffers into columnar msgpack messages (the *outbox*) and hands them to
aiokafka, which batches, compresses and retries them (idempotent, ``acks=all``).

When Kafka cannot take them (unreachable, timing out, or ``FLEETLOG_MODE=offline``)
messages go to the on-disk spool instead, in order; once the broker answers
again the spool is replayed before anything newer is sent, so each producer
stream's sequence numbers reach Kafka in order and the sink can drop repeats.

Two completion points, as in aiokafka: a point is *accepted* when ``log``
returns and *durable* when ``flush()`` returns True (acknowledged by the broker,
or fsynced to the spool in offline mode).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._spool import Frame, Spool

from fleetlog.config import Settings
from fleetlog.events import Envelope, encode, encode_metrics

__all__ = ["Sender", "Stream"]

log = logging.getLogger("fleetlog")

_SENDERS: weakref.WeakSet[Sender] = weakref.WeakSet()
_SEND_TIMEOUT_SECONDS = 10.0


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


class Sender:
    """Ships every registered stream's data to Kafka (or the spool) from a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats: collections.Counter[str] = collections.Counter()
        self._streams: list[Stream] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._new_session()
        _SENDERS.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))

    def _new_session(self) -> None:
        self.session = uuid.uuid4().hex
        self.spool = Spool(self.settings.spool_dir / self.session, max_bytes=self.settings.spool_max_bytes)
        self._outbox: collections.deque[Frame] = collections.deque()
        self._seq: dict[tuple[str, str], int] = {}
        self._producer: AIOKafkaProducer | None = None
        self._offline = self.settings.mode == "offline"
        self._max_request_bytes = max(self.settings.max_message_bytes * 2, 1 << 20) + 65536
        self._spooling = self._offline
        self._next_attempt = 0.0
        self._last_heartbeat = 0.0

    # -- called from the training thread -------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None or self._closed:
            return
        with self._start_lock:
            if self._thread is None:
                self._loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run_loop, args=(ready,), name="fleetlog-sender", daemon=True
                )
                self._thread.start()
                ready.wait()

    def register(self, stream: Stream) -> None:
        self._streams.append(stream)
        self._ensure_started()

    def emit(self, stream: Stream, kind: str, body: dict) -> None:
        """Queue a non-metrics event (run snapshot, params, tags...) for the next ship."""
        stream.events.append(replace(stream.template, kind=kind, body=body, sent_at=time.time()))
        self.wake()

    def wake(self) -> None:
        self._ensure_started()
        if not self._closed:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Ship everything accepted so far; True once the broker acknowledged it.

        False when that did not happen within ``timeout`` (the data is spooled or
        still queued, never dropped) — in offline mode True means fsynced to the spool.
        """
        if self._closed:
            return True
        self._ensure_started()
        fut = asyncio.run_coroutine_threadsafe(self._flush(), self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            log.warning("fleetlog flush timed out after %ss; data stays queued and will be retried", timeout)
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Flush (bounded by ``timeout``), spool what is left, stop the thread; idempotent."""
        if self._closed:
            return
        if self._thread is None and not any(len(st.buffer) or st.events for st in self._streams):
            self._closed = True
            return
        ok = self.flush(timeout)
        self._closed = True
        fut = asyncio.run_coroutine_threadsafe(self._stop(spool_rest=not ok), self._loop)
        try:
            fut.result(timeout)
        except Exception as exc:  # closing must never raise into user code
            log.warning("fleetlog sender did not stop cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    # -- the background thread ----------------------------------------------------------
    def _run_loop(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._wakeup = asyncio.Event()
        self._sent = asyncio.Condition()
        self._ship_lock = asyncio.Lock()
        self._ticker = self._loop.create_task(self._tick())
        ready.set()
        self._loop.run_forever()

    async def _tick(self) -> None:
        interval = self.settings.flush_interval_seconds
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)
            self._wakeup.clear()
            try:
                self._periodic()
                await self._ship()
            except Exception as exc:  # the loop must survive anything
                self.stats["ship_errors"] += 1
                log.warning("fleetlog sender error: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))

    def _periodic(self) -> None:
        now = time.time()
        beat = now - self._last_heartbeat >= self.settings.heartbeat_interval_seconds
        if beat:
            self._last_heartbeat = now
        for stream in self._streams:
            for job in stream.periodic:
                job()
            if beat and stream.alive:
                stream.events.append(replace(stream.template, kind="heartbeat", body={"time": now}, sent_at=now))

    async def _flush(self) -> bool:
        await self._ship()
        if self._offline:
            return not self._outbox
        return not self._outbox and not self._spooling

    async def _ship(self) -> None:
        """Collect, then send the outbox, or spool it; replay the spool once Kafka is back."""
        async with self._ship_lock:
            self._collect()
            if self._spooling:
                self._to_spool()
                if self._offline or time.monotonic() < self._next_attempt:
                    return
                if not await self._replay_spool():
                    return
            await self._send_outbox()

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch = list(self._outbox)
            try:
                await asyncio.wait_for(self._send(batch), _SEND_TIMEOUT_SECONDS)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._broker_down(exc)
                self._to_spool()
                return
            for _ in batch:
                self._outbox.popleft()
            self.stats["messages"] += len(batch)
            self.stats["points"] += sum(f.points for f in batch)

    async def _send(self, frames: list[Frame]) -> None:
        """Hand frames to aiokafka and wait for every acknowledgement.

        Bounded by the caller: a broker that stops answering makes this time out and
        the frames go to the spool.  Frames aiokafka still holds may be delivered
        later as well; their sequence numbers make the sink drop the repeat.
        """
        producer = await self._producer_started()
        futures = [await producer.send(f.topic, f.value, key=f.key) for f in frames]
        await asyncio.gather(*futures)

    async def _replay_spool(self) -> bool:
        """Send spooled segments oldest first; True when the spool is empty again."""
        for path, frames in self.spool.segments():
            try:
                await asyncio.wait_for(self._send(frames), _SEND_TIMEOUT_SECONDS)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._broker_down(exc)
                return False
            path.unlink()
            self.stats["replayed_messages"] += len(frames)
            self.stats["points"] += sum(f.points for f in frames)
        log.info("fleetlog spool drained; sending live again")
        self._spooling = False
        return True

    def _broker_down(self, exc: BaseException) -> None:
        if not self._spooling:
            log.warning("fleetlog cannot reach Kafka (%s); spooling to %s until it is back", exc, self.spool.directory)
        self._spooling = True
        self._next_attempt = time.monotonic() + 2.0
        self.stats["send_failures"] += 1

    def _to_spool(self) -> None:
        if self._outbox:
            frames = list(self._outbox)
            self._outbox.clear()
            self.stats["spooled_messages"] += len(frames)
            self.stats["dropped_messages"] += self.spool.append(frames)

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            s = self.settings
            producer = AIOKafkaProducer(
                bootstrap_servers=s.kafka_bootstrap,
                client_id=f"fleetlog-sdk-{self.session[:8]}",
                acks="all",
                enable_idempotence=True,
                compression_type="zstd",
                linger_ms=20,
                max_batch_size=1 << 20,
                max_request_size=self._max_request_bytes,
                request_timeout_ms=10_000,
                **s.kafka_security(),
            )
            try:
                await asyncio.wait_for(producer.start(), 10)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    def _collect(self) -> None:
        """Drain every stream into encoded frames on the outbox, numbering them as we go."""
        s = self.settings
        for stream in self._streams:
            while stream.events:
                env = replace(stream.events.popleft(), session=self.session)
                value = encode(replace(env, seq=self._seq.get((env.run_id, s.events_topic), 0)))
                if len(value) > self._max_request_bytes:  # could never be sent: it would block everything behind it
                    self.stats["dropped_oversized"] += 1
                    log.error(
                        "fleetlog dropped a %s event of %d bytes (limit %d)",
                        env.kind,
                        len(value),
                        self._max_request_bytes,
                    )
                    continue
                self._next_seq(env.run_id, s.events_topic, 1)
                self._outbox.append(Frame(s.events_topic, env.key, value))
            points = stream.buffer.drain()
            if points is None:
                continue
            first = self._seq.get((stream.template.run_id, s.metrics_topic), 0)
            env = replace(stream.template, kind="metrics", session=self.session, seq=first, sent_at=time.time())
            chunks = list(
                encode_metrics(
                    env,
                    points.names,
                    points.name_idx,
                    points.step,
                    points.ts_ms,
                    points.value,
                    max_bytes=s.max_message_bytes,
                )
            )
            self._next_seq(env.run_id, s.metrics_topic, len(chunks))
            self._outbox.extend(Frame(s.metrics_topic, env.key, msg, n) for n, msg in chunks)

    def _next_seq(self, run_id: str, topic: str, count: int) -> int:
        first = self._seq.get((run_id, topic), 0)
        self._seq[(run_id, topic)] = first + count
        return first

    async def _stop(self, *, spool_rest: bool) -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # the ticker, and a flush that timed out
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if spool_rest:
            self._collect()
            self._to_spool()
            if self.spool:
                log.warning("fleetlog: unsent data spooled at %s; send it with `fleetlog sync`", self.spool.directory)
        self.spool.release()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5)

    def _after_fork_in_child(self) -> None:
        """A forked child (DataLoader worker) starts clean: no thread, no parent's points."""
        self._thread = None
        self._start_lock = threading.Lock()
        self._new_session()
        for stream in self._streams:
            stream.buffer.reset_after_fork()
            stream.events.clear()


def _close_at_exit(ref: Callable[[], Sender | None]) -> None:
    sender = ref()
    if sender is not None:
        sender.close(timeout=10.0)


def _reset_children() -> None:
    for sender in list(_SENDERS):
        sender._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_children)
