"""Writing responses the way clickhouse-server does: headers clients read, errors, streams."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Final

from fleetlog.store.endpoint._codecs import Encoder, compress_all
from fleetlog.store.endpoint._engine import Handle, engine_errors
from fleetlog.store.endpoint._limits import Limits
from fleetlog.store.endpoint._protocol import ClickHouseError

# Control characters (CR and LF above all) in a header would let a value write headers of its own.
_UNSAFE_HEADER: Final = re.compile(r"[\x00-\x1f\x7f]")
_SUMMARY_KEYS: Final = (
    "read_rows",
    "read_bytes",
    "written_rows",
    "written_bytes",
    "total_rows_to_read",
    "result_rows",
    "result_bytes",
)


def result_summary(result: Any) -> dict[str, Any]:
    """A chDB query result's statistics under X-ClickHouse-Summary's names."""
    return {
        "read_rows": result.storage_rows_read(),
        "read_bytes": result.storage_bytes_read(),
        "total_rows_to_read": result.storage_rows_read(),
        "written_rows": result.rows_written(),
        "written_bytes": result.bytes_written(),
        "result_rows": result.rows_read(),
        "result_bytes": result.bytes_read(),
        "elapsed": result.elapsed(),
    }


def summary_header(summary: dict[str, Any]) -> str:
    """X-ClickHouse-Summary as clickhouse-server writes it: every value a decimal string."""
    fields = {key: str(summary.get(key, 0)) for key in _SUMMARY_KEYS}
    fields["elapsed_ns"] = str(int(float(summary.get("elapsed", 0)) * 1e9))
    return json.dumps(fields, separators=(",", ":"))


def content_type(fmt: str | None) -> str:
    """The Content-Type clickhouse-server sends for an output format."""
    name = (fmt or "").lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "withnames" in name else "absent")
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith(("pretty", "vertical", "markdown", "values", "template", "xml", "prometheus")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class ReplyMixin(BaseHTTPRequestHandler):
    """Response side of the handler; per-request state is set by the request side."""

    display_name: ClassVar[str] = "localhost"
    limits: ClassVar[Limits] = Limits()
    # http.server's own errors (a malformed request line, an unknown method): plain text, never HTML.
    error_message_format = "Code: 1000. DB::Exception: %(message)s (HTTP %(code)d). (POCO_EXCEPTION)\n"
    error_content_type = "text/plain; charset=UTF-8"
    _query_id: str = ""
    _timezone: str = "UTC"
    _encoding: str | None = None

    def send_header(self, keyword: str, value: str) -> None:
        """Every header goes through here: none carries a control character, none is CORS.

        Values a client chose are validated where they are read; this is the backstop, so
        a missed one fails the request (500) instead of injecting a header.
        """
        if _UNSAFE_HEADER.search(keyword) or _UNSAFE_HEADER.search(str(value)):
            raise ValueError(f"refusing to send header {keyword!r}: its value holds a control character")
        if keyword.lower().startswith("access-control-"):
            raise ValueError(f"refusing to send {keyword!r}: the endpoint never grants browsers access")
        super().send_header(keyword, value)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Start a response afresh (a failed one may have left headers behind), always with nosniff."""
        self._headers_buffer: list[bytes] = []
        super().send_response(code, message)
        self.send_header("X-Content-Type-Options", "nosniff")

    def _headers(self, status: int, fmt: str | None, summary: dict[str, Any] | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type(fmt))
        self.send_header("X-ClickHouse-Server-Display-Name", self.display_name)
        self.send_header("X-ClickHouse-Query-Id", self._query_id)
        if fmt:
            self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", self._timezone)
        if summary is not None:
            self.send_header("X-ClickHouse-Summary", summary_header(summary))
        self.send_header("Keep-Alive", f"timeout={int(self.limits.idle_timeout_seconds)}")

    def _reply(
        self, data: bytes | memoryview, *, fmt: str | None = None, summary: dict[str, Any] | None = None
    ) -> None:
        """A whole 200 response; empty bodies stay uncompressed (an empty lz4 body is not a frame)."""
        encoding = self._encoding if len(data) else None
        if encoding:
            data = compress_all(data, encoding)
        self._headers(200, fmt, summary if summary is not None else {})
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply_plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply_error(self, exc: ClickHouseError) -> None:
        body = (exc.text.rstrip("\n") + "\n").encode()
        self.send_response(exc.status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("X-ClickHouse-Exception-Code", str(exc.code))
        self.send_header("X-ClickHouse-Query-Id", self._query_id)
        self.send_header("X-ClickHouse-Server-Display-Name", self.display_name)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _reply_stream(
        self,
        handle: Handle,
        sql: bytes,
        fmt: str,
        params: dict[str, str],
        empty: Callable[[], bytes] | None = None,
    ) -> bool:
        """Chunked response, one engine block at a time, for clients reading a stream.

        The first block is fetched before the headers so a failing query still gets a
        proper error status; a failure after that is written into the body, which is
        what clickhouse-server does and what clickhouse-connect looks for. False when
        chDB cannot stream this statement (``EXISTS``, some ``SHOW``): reply whole.
        An empty result is answered whole with ``empty()``'s bytes when given.
        """
        try:
            stream = handle.stream(sql, fmt, params)
        except ClickHouseError as exc:
            if exc.code == 36 and "Streaming query is not supported" in exc.text:
                return False
            raise
        try:
            with engine_errors():
                first = next(stream, None)
            if first is None and empty is not None:
                self._close_stream(handle, stream)
                self._reply(empty(), fmt=fmt, summary={})
                return True
            self._headers(200, fmt, None)
            if self._encoding:
                self.send_header("Content-Encoding", self._encoding)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunks(_blocks(first, stream), Encoder(self._encoding) if self._encoding else None)
            return True
        finally:
            self._close_stream(handle, stream)

    @staticmethod
    def _close_stream(handle: Handle, stream: Any) -> None:
        try:
            stream.close()
        except Exception:
            handle.discard = True

    def _write_chunks(self, blocks: Iterator[Any], encoder: Encoder | None) -> None:
        def put(data: bytes | memoryview, final: bool = False) -> None:
            if encoder:
                data = encoder.compress(data) + (encoder.flush() if final else b"")
            if len(data):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

        try:
            with engine_errors():
                for block in blocks:
                    buffer = block.get_memview()
                    put(buffer.view())
        except ClickHouseError as exc:
            put(("\n" + exc.text.rstrip("\n") + "\n").encode())
            self.close_connection = True
        put(b"", final=True)
        self.wfile.write(b"0\r\n\r\n")

    def _drain(self, raw: Iterator[bytes], limit: int = 64 << 20) -> None:
        """Read what is left of the body so the connection can carry the next request."""
        if self.close_connection:
            return
        seen = 0
        try:
            for chunk in raw:
                seen += len(chunk)
                if seen > limit:
                    self.close_connection = True
                    return
        except ClickHouseError:
            self.close_connection = True


def _blocks(first: Any, stream: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from stream
