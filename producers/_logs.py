"""Captured text: script output and Python log records, shipped as ``logs`` events.

Lines are appended (thread-safe, cheap) to a ``LineBuffer``; the sender drains it
on its tick into one columnar ``logs`` event, so a chatty script costs one Kafka
message per tick, not one per line.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["LineBuffer", "LoggingHandler"]

_OWN_LOGGERS = ("fleetlog", "aiokafka", "kafka")
_MAX_LINES = 100_000


class LineBuffer:
    """Bounded buffer of log lines; drops (and counts) the newest when full."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[int, str, str, str, str]] = []
        self.dropped = 0

    def add(self, stream: str, message: str, *, level: str = "", logger: str = "", ts: float | None = None) -> None:
        line = (int((time.time() if ts is None else ts) * 1000), stream, level, logger, message)
        with self._lock:
            if len(self._lines) >= _MAX_LINES:
                self.dropped += 1
                return
            self._lines.append(line)

    def drain(self) -> dict[str, list[Any]] | None:
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return None
        ts, stream, level, logger, message = (list(col) for col in zip(*lines, strict=True))
        return {"ts": ts, "stream": stream, "level": level, "logger": logger, "message": message}


class LoggingHandler(logging.Handler):
    """A ``logging`` handler that ships records into a run's ``logs`` table.

    ``logging.getLogger().addHandler(fleetlog.LoggingHandler(run))`` — or
    ``run.capture_logging()``.  fleetlog's own and Kafka's loggers are skipped so
    that shipping a record can never log (and ship) another.
    """

    def __init__(self, run: Any, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: LineBuffer = run._lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_OWN_LOGGERS):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + (self.formatter or logging.Formatter()).formatException(record.exc_info)
            self._lines.add("logging", message, level=record.levelname, logger=record.name, ts=record.created)
        except Exception:  # a handler must never raise into the caller
            self.handleError(record)
