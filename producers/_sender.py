"""The sender: one background thread, one asyncio loop, one AIOKafkaProducer.

The training thread never touches the network.  It appends to buffers; this
thread wakes every ``flush_interval_seconds`` (or early when a buffer fills),
turns buffers into columnar msgpack messages (the *outbox*) and hands them to
aiokafka, which batches, compresses and retries them (idempotent, ``acks=all``).

When Kafka cannot take them (unreachable, timing out, or ``FLEETLOG_MODE=offline``)
messages go to the on-disk spool instead, in order; once the broker answers
again the spool is replayed before anything newer is sent, so each producer
stream's sequence numbers reach Kafka in order and the sink can drop repeats.

The same path absorbs bursts (``FLEETLOG_BUFFER_WHEN_FULL=spool``, the default):
when a buffer overflowed because the training loop logs faster than Kafka takes
it, this thread encodes the excess and appends it to the spool, and keeps
replaying the spool (moving what is logged meanwhile to its tail) until it is
empty; then it sends live again.  Nothing is dropped unless the spool reaches
``FLEETLOG_SPOOL_MAX_BYTES`` (counted per run in ``run.dropped_points``, logged once).
The training thread only ever appends to memory.

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
from fleetlog.producers._outbox import Outbox, Stream, groups
from fleetlog.producers._spool import Frame, Spool

from fleetlog.config import Settings

__all__ = ["Sender", "Stream"]

log = logging.getLogger("fleetlog")

_SENDERS: weakref.WeakSet[Sender] = weakref.WeakSet()
_SEND_TIMEOUT_SECONDS = 10.0
# Message bytes handed to aiokafka before waiting for their acknowledgements: big enough to keep a
# request in flight while the next batch is built, small enough that overflow is checked often.
_GROUP_BYTES = 8 << 20
# Uncompressed bytes per Kafka record batch; fleetlog creates its topics with max.message.bytes=10 MiB.
_BATCH_BYTES = 4 << 20
# Encoded bytes the outbox may hold while a live send is in flight and the training loop overflows:
# about what the buffers themselves may hold under "spool" (4 x FLEETLOG_MAX_BUFFER_POINTS x 28 bytes).
_OUTBOX_BYTES = 112 << 20


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
        self.spool = Spool(self.settings.spool_dir / self.session, max_bytes=self.settings.sdk.spool_max_bytes)
        self._max_request_bytes = max(self.settings.kafka.max_message_bytes * 2, _BATCH_BYTES) + 65536
        self._outbox = Outbox(self.settings, self.session, self.stats, self._max_request_bytes)
        self._producer: AIOKafkaProducer | None = None
        self._offline = self.settings.sdk.mode == "offline"
        self._spooling = self._offline  # data goes through the spool: offline, Kafka away, or behind
        self._outage = False
        self._live_in_flight = False
        self._next_attempt = 0.0
        self._last_heartbeat = 0.0
        self._last_periodic = 0.0

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
        if self._thread is not None:
            stream.buffer.sender_ident = self._thread.ident

    def emit(self, stream: Stream, kind: str, body: dict) -> None:
        """Queue a non-metrics event (run snapshot, params, tags...) for the next ship."""
        stream.events.append(replace(stream.template, kind=kind, body=body, sent_at=time.time()))
        self.wake()

    def wake(self) -> None:
        self._ensure_started()
        if not self._closed:
            self._loop.call_soon_threadsafe(self._woken)

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
        for stream in self._streams:  # streams registered before a fork reset
            stream.buffer.sender_ident = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._ship_lock = asyncio.Lock()
        self._ticker = self._loop.create_task(self._tick())
        ready.set()
        self._loop.run_forever()

    def _woken(self) -> None:
        """On the loop: start a ship -- or, while one is busy sending, move what overflowed out of memory."""
        self._wakeup.set()
        if self._ship_lock.locked():
            self._spill()

    def _spill(self) -> None:
        """Collect while a ship awaits Kafka; to disk when spooling and no live send is in flight.

        A live send in flight holds older frames that may yet fail and go to the spool,
        so until it ends what is collected waits in the outbox (bounded: past
        ``_OUTBOX_BYTES`` the buffers keep it, under their own bound).
        """
        if not (self._spooling or self._overflowed()):
            return  # keeping up: the ship collects when its outbox is sent
        if self._live_in_flight and self._outbox.nbytes >= _OUTBOX_BYTES:
            return
        self._collect()
        if self._spooling and not self._live_in_flight:
            self._to_spool()

    async def _tick(self) -> None:
        interval = self.settings.sdk.flush_interval_seconds
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
        self._last_periodic = time.monotonic()
        now = time.time()
        beat = now - self._last_heartbeat >= self.settings.sdk.heartbeat_interval_seconds
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
        """Collect, then send live -- or through the spool while Kafka is away or the sender is behind."""
        async with self._ship_lock:
            while True:
                if time.monotonic() - self._last_periodic >= self.settings.sdk.flush_interval_seconds:
                    self._periodic()  # heartbeats and log lines keep flowing during a long burst
                self._collect()
                if self._spooling:
                    self._to_spool()
                    if self._offline or time.monotonic() < self._next_attempt:
                        return
                    if not await self._replay_spool():
                        return
                if await self._send_outbox():
                    return

    def _collect(self) -> None:
        if self._outbox.collect(self._streams) and not self._spooling:
            if not self.stats["fell_behind"]:
                log.info(
                    "fleetlog: the training loop logs faster than Kafka takes it; the excess goes to the spool "
                    "at %s and is replayed in order (FLEETLOG_BUFFER_WHEN_FULL=spool)",
                    self.spool.directory,
                )
            self.stats["fell_behind"] += 1
            self._spooling = True

    def _overflowed(self) -> bool:
        return any(st.buffer.overflowed for st in self._streams)

    async def _send_outbox(self) -> bool:
        """Send the outbox live, oldest first; False when it switched to the spool (Kafka away, or behind)."""
        while self._outbox:
            group = self._outbox.head(_GROUP_BYTES)
            self._live_in_flight = True
            try:
                sent = await self._send_group(group)
            finally:
                self._live_in_flight = False
            if not sent:
                self._to_spool()
                return False
            self._outbox.pop(len(group))
            self.stats["messages"] += len(group)
            self.stats["points"] += sum(f.points for f in group)
            if self._spooling or self._overflowed():
                return False  # behind: the caller spools the rest and replays it
        return True

    async def _send_group(self, frames: list[Frame]) -> bool:
        try:
            await asyncio.wait_for(self._send(frames), _SEND_TIMEOUT_SECONDS)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._broker_down(exc)
            return False
        return True

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
        """Send spooled segments oldest first until none is left; True when the spool is empty again.

        What is logged meanwhile goes on to the spool's tail (behind what is replayed),
        so each stream's sequence numbers still reach Kafka in order.
        """
        while self.spool:
            for path, frames in self.spool.segments():
                for group in groups(frames, _GROUP_BYTES):
                    if not await self._send_group(group):
                        return False
                    self.stats["replayed_messages"] += len(group)
                    self.stats["points"] += sum(f.points for f in group)
                    if any(st.buffer.wants_drain for st in self._streams):
                        self._spill()
                path.unlink()
        if self._outage:
            log.info("fleetlog spool drained; sending live again")
        self._spooling = self._outage = False
        return True

    def _broker_down(self, exc: BaseException) -> None:
        if not self._outage:
            log.warning("fleetlog cannot reach Kafka (%s); spooling to %s until it is back", exc, self.spool.directory)
        self._spooling = self._outage = True
        self._next_attempt = time.monotonic() + 2.0
        self.stats["send_failures"] += 1

    def _to_spool(self) -> None:
        """Move the whole outbox to the spool's tail; fsynced unless it is a burst spilled while Kafka is up."""
        frames = self._outbox.take_all()
        if frames:
            self.stats["spooled_messages"] += len(frames)
            self.stats["spooled_points"] += sum(f.points for f in frames)
            sync = self._offline or self._outage or self._closed
            self.stats["dropped_messages"] += self.spool.append(frames, on_drop=self._dropped, sync=sync)

    def _dropped(self, frame: Frame) -> None:
        """A frame the full spool refused: its points count against its run's ``dropped_points``."""
        if not frame.points:
            return
        self.stats["dropped_points"] += frame.points
        for stream in self._streams:
            if stream.template.key == frame.key:
                stream.buffer.count_dropped(frame.points)
                return

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            s = self.settings
            producer = AIOKafkaProducer(
                **s.kafka.client_kwargs(),
                client_id=f"fleetlog-sdk-{self.session[:8]}",
                acks="all",
                enable_idempotence=True,
                compression_type="zstd",
                linger_ms=20,
                max_batch_size=_BATCH_BYTES,
                max_request_size=self._max_request_bytes,
            )
            try:
                await asyncio.wait_for(producer.start(), 10)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

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
