"""``fleetlog sync``: send spooled messages (offline runs, outages) to Kafka.

Spooled frames carry their producer session and sequence numbers, so syncing a
spool that was partly sent already is harmless: the sink drops the repeats.
A spool still owned by a running process is skipped (it replays itself).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from fleetlog.producers._spool import Spool, spooled_sessions

from fleetlog.config import Settings

__all__ = ["SyncReport", "sync_spool"]

log = logging.getLogger("fleetlog")


@dataclass
class SyncReport:
    sessions: int = 0
    messages: int = 0
    points: int = 0
    skipped_busy: int = 0


async def sync_spool(settings: Settings, path: Path | None = None) -> SyncReport:
    """Replay every session spool under ``path`` (default: the spool directory), oldest first."""
    root = path or settings.spool_dir
    dirs = [root] if any(root.glob("*.spool")) else spooled_sessions(root)
    report = SyncReport()
    if not dirs:
        return report
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",
        max_request_size=max(settings.kafka.max_message_bytes * 2, 1 << 20),
        **settings.kafka.security_kwargs(),
    )
    await producer.start()
    try:
        for directory in dirs:
            spool = Spool(directory, max_bytes=settings.sdk.spool_max_bytes)
            if not spool.lock(wait=False):
                report.skipped_busy += 1
                log.info("skipping %s: a running process owns it", directory)
                continue
            try:
                for segment, frames in spool.segments():
                    futures = [await producer.send(f.topic, f.value, key=f.key) for f in frames]
                    for fut in futures:
                        await fut
                    segment.unlink()
                    report.messages += len(frames)
                    report.points += sum(f.points for f in frames)
                report.sessions += 1
            finally:
                spool.release()
    finally:
        await producer.stop()
    return report
