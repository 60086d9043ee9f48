"""The wire side of ClickHouse's HTTP interface: errors, URL arguments, request bodies.

Everything here follows what clickhouse-server does (``src/Server/HTTPHandler.cpp`` and
``exceptionCodeToHTTPStatus.cpp``) closely enough that ClickHouse clients cannot tell the
difference for the features the endpoint supports, and fails loudly for those it does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import IO, Any, Final

# ClickHouse error codes the endpoint raises itself (names from errorCodeToName()).
ERROR_NAMES: Final = {
    33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    73: "UNKNOWN_FORMAT",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    229: "QUERY_IS_TOO_LARGE",
    271: "CANNOT_DECOMPRESS",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    374: "INVALID_SESSION_TIMEOUT",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1001: "STD_EXCEPTION",
}
# exceptionCodeToHTTPStatus.cpp (ClickHouse 26.x), with the codes resolved by errorCodeToName().
_STATUS_BY_CODE: Final = {
    194: 401,
    **dict.fromkeys((192, 193, 497, 512, 516), 403),
    **dict.fromkeys(
        (6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321, 376, 427, 441, 675, 676),
        400,
    ),
    **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511), 404),
    229: 413,
    48: 501,
    209: 503,
    202: 503,
    76: 503,
    381: 411,
    159: 408,
    439: 503,
    779: 415,
}
_CODE_RE: Final = re.compile(r"Code: (\d+)\.")

# URL arguments that are HTTP-layer controls, never engine settings.
TRANSPORT_ARGS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "readonly",
        # Real settings whose only effect is on the HTTP response, which the endpoint produces.
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "http_native_compression_disable_checksumming_on_decompress",
        "http_write_exception_in_output_format",
    }
)
_TRUE: Final = frozenset({"1", "true", "True"})
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TIMEZONE: Final = re.compile(r"[A-Za-z0-9_+\-/.:]{1,64}")


class ClickHouseError(Exception):
    """An error to report the way clickhouse-server does: status, code header, ``Code: N.`` body."""

    def __init__(self, code: int, message: str, *, body: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = _STATUS_BY_CODE.get(code, 500)
        name = ERROR_NAMES.get(code)
        self.text = body or f"Code: {code}. DB::Exception: {message}." + (f" ({name})" if name else "")

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """chDB raises RuntimeError('... Code: 60. DB::Exception: ...'); keep its own text."""
        text = str(exc)
        match = _CODE_RE.search(text)
        if match is None:
            return cls(1001, text or type(exc).__name__)
        body = text[match.start() :].strip()
        return cls(int(match.group(1)), body, body=body)


@dataclass
class RequestArgs:
    """A request's URL (and form) arguments, sorted into what each layer consumes."""

    query: str = ""
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    transport: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> RequestArgs:
        args = cls()
        for key, value in pairs:
            if key.startswith("param_"):
                args.params[key[6:]] = value
            elif key == "query":
                args.query = value
            elif key in TRANSPORT_ARGS:
                args.transport[key] = value
            else:
                args.settings[key] = value
        return args

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.transport.get(name)
        return default if value is None else value in _TRUE

    def check_reflected(self, formats: Mapping[str, str]) -> None:
        """Refuse values that would reach a response header unchecked; spell the format as the engine does.

        ``query_id`` (X-ClickHouse-Query-Id), ``default_format`` (X-ClickHouse-Format,
        Content-Type), ``session_timezone`` (X-ClickHouse-Timezone) and ``session_id`` (a key)
        come from the client; a CR/LF in one would write headers of the client's choosing.
        """
        for name in ("query_id", "session_id"):
            value = self.transport.get(name)
            if value and not _TOKEN.fullmatch(value):
                raise ClickHouseError(36, f"Invalid {name}: use 1 to 128 of A-Z a-z 0-9 _ . : -")
        fmt = self.transport.get("default_format")
        if fmt:
            if fmt.lower() not in formats:
                raise ClickHouseError(73, f"Unknown output format {fmt[:64]!r}")
            self.transport["default_format"] = formats[fmt.lower()]
        timezone = self.settings.get("session_timezone")
        if timezone and not _TIMEZONE.fullmatch(timezone):
            raise ClickHouseError(36, f"Invalid session_timezone {timezone[:64]!r}")


def iter_body(rfile: IO[bytes], headers: Mapping[str, str], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The raw request body, from ``Content-Length`` or ``Transfer-Encoding: chunked``.

    clickhouse-connect streams inserts from a generator, which urllib3 sends chunked;
    http.server leaves de-chunking to the handler.
    """
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        yield from _iter_chunked(rfile, chunk_size)
        return
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        data = rfile.read(min(chunk_size, remaining))
        if not data:
            raise ClickHouseError(33, "Connection closed before the request body was complete")
        remaining -= len(data)
        yield data


def _iter_chunked(rfile: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ClickHouseError(33, "Malformed chunked request body") from None
        if size == 0:
            while rfile.readline(65536).strip():
                pass  # trailers
            return
        while size > 0:
            data = rfile.read(min(chunk_size, size))
            if not data:
                raise ClickHouseError(33, "Connection closed inside a request body chunk")
            size -= len(data)
            yield data
        rfile.readline(16)  # the CRLF closing the chunk


def read_limited(chunks: Iterable[bytes], limit: int, prefix: bytes = b"") -> bytes:
    """Join a body that must be held whole (a query), refusing one over ``limit`` bytes."""
    parts, size = [prefix], len(prefix)
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ClickHouseError(229, f"Query is too large ({size} bytes read, limit {limit})")
        parts.append(chunk)
    return b"".join(parts)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Form fields of a multipart body; clickhouse-connect sends long parameters this way."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: list[tuple[str, str]] = []
    for part in message.iter_parts():
        if part.get_filename():
            raise ClickHouseError(48, "External data (file parts in a multipart request) is not supported")
        name = part.get_param("name", header="content-disposition")
        payload: Any = part.get_payload(decode=True) or b""
        if isinstance(name, str):
            fields.append((name, payload.decode()))
    return fields
