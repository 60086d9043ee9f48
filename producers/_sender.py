"""The sender: one background thread, one asyncio loop, one AIOKafkaProducer.

The training thread never touches the network.  It appends to buffers; this
thread wakes every ``flush_interval_seconds`` (or early when a buffer fills),
turns buffers into columnar msgpack messages and hands them to aiokafka, which
batches, compresses and retries them (idempotent producer, ``acks=all``).

Two completion points, as in aiokafka: a point is *accepted* when ``log``
returns and *durable* when ``flush()`` returns, after the broker acknowledged it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fleetlog.producers._buffer import MetricBuffer

from fleetlog.config import Settings
from fleetlog.events import Envelope, encode, encode_metrics

__all__ = ["Sender", "Stream"]

log = logging.getLogger("fleetlog")


class Stream:
    """What one run contributes to the sender: its envelope, points and events."""

    def __init__(self, template: Envelope, buffer: MetricBuffer) -> None:
        self.template = template
        self.buffer = buffer
        self.events: collections.deque[Envelope] = collections.deque()


class Sender:
    """Ships every registered stream's data to Kafka from a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session = uuid.uuid4().hex
        self._seq = 0
        self._streams: list[Stream] = []
        self._loop = asyncio.new_event_loop()
        self._wakeup: asyncio.Event | None = None
        self._started = threading.Event()
        self._closed = False
        self._ship_lock: asyncio.Lock | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[tuple[str, bytes, bytes, int]] = []
        self.stats = collections.Counter[str]()
        self._thread = threading.Thread(target=self._run_loop, name="fleetlog-sender", daemon=True)
        self._thread.start()
        self._started.wait()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- called from the training thread -------------------------------------------------
    def register(self, stream: Stream) -> None:
        self._streams.append(stream)

    def emit(self, stream: Stream, kind: str, body: dict) -> None:
        """Queue a non-metrics event (run snapshot, params, tags) for the next ship."""
        stream.events.append(replace(stream.template, kind=kind, body=body, sent_at=time.time()))
        self.wake()

    def wake(self) -> None:
        if not self._closed and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Ship everything accepted so far and wait for the broker's acknowledgement."""
        if self._closed:
            return True
        fut = asyncio.run_coroutine_threadsafe(self._ship_all(), self._loop)
        try:
            fut.result(timeout)
            return True
        except TimeoutError:
            log.warning("fleetlog flush timed out after %ss; data stays buffered", timeout)
            return False
        except KafkaError as exc:
            log.warning("fleetlog flush failed: %s; data stays buffered and will be retried", exc)
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Flush (bounded by ``timeout``) and stop the thread; idempotent."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        fut = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        try:
            fut.result(timeout)
        except Exception as exc:  # closing must never raise into user code
            log.warning("fleetlog sender did not stop cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    # -- the background thread ----------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._wakeup = asyncio.Event()
        self._ship_lock = asyncio.Lock()
        self._ticker = self._loop.create_task(self._tick())
        self._started.set()
        self._loop.run_forever()

    async def _tick(self) -> None:
        interval = self.settings.flush_interval_seconds
        while not self._closed:
            assert self._wakeup is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)
            self._wakeup.clear()
            try:
                await self._ship()
            except Exception as exc:
                self.stats["ship_errors"] += 1
                log.warning("fleetlog could not ship to Kafka (%s); retrying", exc)
                await asyncio.sleep(min(5.0, interval * 5))

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
                max_request_size=max(s.max_message_bytes * 2, 1 << 20),
                request_timeout_ms=30_000,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _ship_all(self) -> None:
        """Ship until nothing accepted before this call is left (pending, then buffers)."""
        await self._ship()
        if any(len(st.buffer) or st.events for st in self._streams):
            await self._ship()

    async def _ship(self) -> None:
        """Send what is pending plus what the buffers hold; clear it only once acknowledged.

        While an earlier ship failed, buffers are not drained: they keep filling up to
        their bound, so memory stays bounded while Kafka is down.
        """
        assert self._ship_lock is not None
        async with self._ship_lock:
            if not self._pending:
                self._pending = self._collect()
            if not self._pending:
                return
            producer = await self._producer_started()
            futures = [await producer.send(topic, value, key=key) for topic, key, value, _ in self._pending]
            await asyncio.gather(*futures)
            self.stats["messages"] += len(self._pending)
            self.stats["points"] += sum(points for *_, points in self._pending)
            self._pending = []

    def _collect(self) -> list[tuple[str, bytes, bytes, int]]:
        """Drain every stream into encoded messages, numbering them as we go."""
        messages: list[tuple[str, bytes, bytes, int]] = []
        s = self.settings
        for stream in self._streams:
            while stream.events:
                env = replace(stream.events.popleft(), session=self.session, seq=self._next_seq(1))
                messages.append((s.events_topic, env.key, encode(env), 0))
            points = stream.buffer.drain()
            if points is None:
                continue
            env = replace(stream.template, kind="metrics", session=self.session, seq=self._seq, sent_at=time.time())
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
            self._next_seq(len(chunks))
            messages.extend((s.metrics_topic, env.key, msg, n) for n, msg in chunks)
        return messages

    def _next_seq(self, count: int) -> int:
        seq = self._seq
        self._seq += count
        return seq

    async def _stop(self) -> None:
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        if self._producer is not None:
            await self._producer.stop()


def _close_at_exit(ref: Callable[[], Sender | None]) -> None:
    sender = ref()
    if sender is not None:
        sender.close(timeout=10.0)
