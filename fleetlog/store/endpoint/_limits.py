"""What one client may cost the endpoint: connections, time to send a request, body bytes.

The endpoint runs a thread per connection and spools insert bodies to disk, so a slow or
hostile client (slowloris, a decompression bomb, thousands of idle sockets) would
otherwise hold threads, memory and disk without end. :class:`Limits` bounds each; the
:class:`DeadlineReader` under a connection's ``rfile`` enforces the time limits on every
``recv`` the HTTP parser makes, so a request head that trickles in a byte at a time is
cut off when its whole-head deadline passes, not merely when one ``recv`` stalls.
"""

from __future__ import annotations

import io
import socket
import time
from dataclasses import dataclass

__all__ = ["DeadlineReader", "Limits"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Per-endpoint bounds; the defaults suit a store on a shared GPU node.

    ``max_body_bytes`` counts the body *after* decompression, which is what reaches the
    engine and the insert spool file; sinks insert at most ``sink_batch_bytes`` (32 MiB by
    default) per request, so 1 GiB leaves room for bulk loads by hand.
    """

    max_connections: int = 64
    header_timeout_seconds: float = 10.0  # request line + headers, all of it
    idle_timeout_seconds: float = 60.0  # a keep-alive connection waiting for its next request
    body_timeout_seconds: float = 300.0  # one recv or send while a body or a reply is under way
    max_head_bytes: int = 1 << 20  # the SQL before an INSERT's data
    max_body_bytes: int = 1 << 30


class DeadlineReader(io.RawIOBase):
    """A socket's read side whose timeout depends on what the connection is doing.

    ``await_request`` starts waiting for a request: the first byte may take
    ``idle_timeout_seconds``; from it, the head must be complete within
    ``header_timeout_seconds``. ``reading_body`` switches to a per-``recv`` timeout.
    A timeout raises ``TimeoutError``, which ``BaseHTTPRequestHandler`` answers by
    closing the connection.
    """

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        super().__init__()
        self._sock, self._limits = sock, limits
        self._deadline: float | None = None
        self._waiting = False

    def await_request(self) -> None:
        self._deadline, self._waiting = None, True

    def reading_body(self) -> None:
        self._deadline, self._waiting = None, False
        self._sock.settimeout(self._limits.body_timeout_seconds)  # also bounds the reply's sends

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._waiting and self._deadline is None:
            timeout = self._limits.idle_timeout_seconds
        elif self._deadline is not None:
            timeout = self._deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request head did not arrive in time")
        else:
            timeout = self._limits.body_timeout_seconds
        self._sock.settimeout(timeout)
        count = self._sock.recv_into(buffer)
        if self._waiting and self._deadline is None and count:
            self._deadline = time.monotonic() + self._limits.header_timeout_seconds
        return count
