"""The on-disk spool: where encoded messages wait while Kafka cannot take them.

Append-only segment files of length-prefixed msgpack frames ``[topic, key, value]``
under ``<spool_dir>/<session>/``.  Frames are already-encoded messages with their
sequence numbers, so replaying a segment twice is harmless: the sink drops what
already landed.  The spool is bounded; when full it drops the *newest* frames
(the oldest are the ones a user is most likely to miss) and counts them.

A torn last frame (the process died mid-write) is ignored on replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from fleetlog._private import private_dir

__all__ = ["Frame", "Spool", "spooled_sessions"]

log = logging.getLogger("fleetlog")

_LEN = struct.Struct("<I")
_SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    topic: str
    key: bytes
    value: bytes
    points: int = 0


class Spool:
    """One producer session's spool directory."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self._file = None
        self._segment = 0
        self._lock_fd: int | None = None

    def lock(self, *, wait: bool = True) -> bool:
        """Own the directory (flock): a live producer and ``fleetlog sync`` never replay it at once."""
        if self._lock_fd is not None:
            return True
        private_dir(self.directory, root=self.directory.parent)  # <spool_dir>/<session>, both 0700
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _segments(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.spool"))

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self._segments())

    def __bool__(self) -> bool:
        return any(p.stat().st_size for p in self._segments())

    def append(self, frames: list[Frame], on_drop: Callable[[Frame], None] | None = None, *, sync: bool = True) -> int:
        """Write frames durably (fsync unless ``sync=False``); returns how many were dropped for lack of room.

        ``on_drop`` is called with each dropped frame (the sender counts its points per
        run).  The first drop is logged with the numbers; later ones are only counted.  A burst
        the sender spills while Kafka is up skips the fsync: that data was only in memory before.
        """
        if not frames:
            return 0
        self.lock()
        used = self.nbytes
        room = self.max_bytes - used
        data = bytearray()
        dropped = lost_points = 0
        for f in frames:
            body = msgpack.packb([f.topic, f.key, f.value, f.points], use_bin_type=True)
            if len(data) + len(body) + _LEN.size > room:
                dropped += 1
                lost_points += f.points
                if on_drop is not None:
                    on_drop(f)
                continue
            data += _LEN.pack(len(body)) + body
        if dropped:
            if not self.dropped:
                log.warning(
                    "fleetlog spool full (%d of %d bytes, FLEETLOG_SPOOL_MAX_BYTES, at %s): dropped the %d newest "
                    "messages (%d points); from now on messages that do not fit are dropped and counted "
                    "(run.dropped_points) without another warning",
                    used + len(data),
                    self.max_bytes,
                    self.directory,
                    dropped,
                    lost_points,
                )
            self.dropped += dropped
        if data:
            fh = self._writable()
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        return dropped

    def _writable(self):
        if self._file is None or self._file.tell() >= _SEGMENT_BYTES:
            self.close()
            existing = self._segments()
            self._segment = int(existing[-1].stem) + 1 if existing else 0
            path = self.directory / f"{self._segment:012d}.spool"
            # 0600 from creation: a spool holds everything a run logged.
            self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        return self._file

    def segments(self) -> Iterator[tuple[Path, list[Frame]]]:
        """Each segment's frames, oldest first; the caller deletes a segment once it is sent."""
        self.close()
        for path in self._segments():
            yield path, read_segment(path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def release(self) -> None:
        """Close the segment and give up the directory; an empty directory is removed."""
        self.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.directory.exists() and not any(self.directory.glob("*.spool")):
            (self.directory / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()


def read_segment(path: Path) -> list[Frame]:
    data = path.read_bytes()
    frames, pos = [], 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        body = data[pos + _LEN.size : pos + _LEN.size + size]
        if len(body) < size:
            log.warning("fleetlog spool %s ends with a torn frame (%d of %d bytes); ignored", path, len(body), size)
            break
        topic, key, value, points = msgpack.unpackb(body, raw=False)
        frames.append(Frame(topic, key, value, points))
        pos += _LEN.size + size
    return frames


def spooled_sessions(spool_dir: Path) -> list[Path]:
    """Session directories that still hold spooled messages, oldest first."""
    if not spool_dir.exists():
        return []
    dirs = [d for d in spool_dir.iterdir() if d.is_dir() and any(d.glob("*.spool"))]
    return sorted(dirs, key=lambda d: min(p.stat().st_mtime for p in d.glob("*.spool")))
