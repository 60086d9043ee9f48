"""The request side of :class:`fleetlog.store.endpoint.HttpEndpoint`'s handler.

One handler instance serves one keep-alive connection; each request takes a chDB handle
(see ``_engine``), runs one statement on it and passes the engine's bytes, already in the
format the client asked for, to the socket.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

from fleetlog._browser import HostPolicy, refusal
from fleetlog.credentials import StoreCredentials
from fleetlog.store.endpoint._codecs import choose_encoding, decode_body
from fleetlog.store.endpoint._engine import Handle, HandlePool
from fleetlog.store.endpoint._limits import DeadlineReader
from fleetlog.store.endpoint._protocol import ClickHouseError, RequestArgs, iter_body, parse_multipart, read_limited
from fleetlog.store.endpoint._reply import ReplyMixin, result_summary
from fleetlog.store.endpoint._sandbox import Role, check_insert, check_query
from fleetlog.store.endpoint._sqlscan import InsertHead, file_clause, output_format, read_head, with_output_format

log = logging.getLogger("fleetlog.sink.endpoint")

# Formats whose per-block outputs concatenate into one valid stream (no global header/footer).
_STREAMABLE: Final = frozenset(
    {"native", "tabseparated", "tsv", "tsvraw", "tabseparatedraw", "csv", "rowbinary", "jsoneachrow"}
)


@dataclass(frozen=True)
class EndpointConfig:
    """What every request needs to know about the endpoint; read-only once serving."""

    pool: HandlePool
    credentials: StoreCredentials = field(repr=False)
    timezone: str
    formats: dict[str, str]
    compress_responses: bool | None = None
    max_query_bytes: int = 64 << 20


def credentials(headers: Any, transport: dict[str, str]) -> tuple[str, str]:
    """(user, password) where clickhouse-server looks for them: headers, Basic auth, URL."""
    if headers.get("X-ClickHouse-User") is not None or headers.get("X-ClickHouse-Key") is not None:
        return headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key") or ""
    auth = headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user, password
    return transport.get("user", "default"), transport.get("password", "")


class RequestHandler(ReplyMixin):
    """ClickHouse's HTTP protocol (the parts ClickHouse clients use) over chDB."""

    config: ClassVar[EndpointConfig]
    # Who the request authenticated as; the sandbox and the handle pool decide by it. Least privilege until then.
    _role: Role = "reader"
    protocol_version = "HTTP/1.1"  # keep-alive: a TCP connection per query would cost more than the query
    server_version = "fleetlog-chdb"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = None  # the DeadlineReader sets a socket timeout for each recv (see _http_limits)
    hosts: ClassVar[HostPolicy] = HostPolicy.for_bind("127.0.0.1")

    def setup(self) -> None:
        """Read requests through a :class:`DeadlineReader`: header and idle timeouts per connection."""
        super().setup()
        self.rfile.close()  # the makefile() reader holds a reference that would keep the socket open
        self._reader = DeadlineReader(self.connection, self.limits)
        self.rfile = io.BufferedReader(self._reader, 1 << 16)

    def handle_one_request(self) -> None:
        self._reader.await_request()
        super().handle_one_request()

    def do_GET(self) -> None:
        self._handle(readonly=True)

    def do_POST(self) -> None:
        self._handle(readonly=False)

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Never log request lines: a URL may carry ``password=``."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.client_address[0], *args)

    def _handle(self, readonly: bool) -> None:
        self._reader.reading_body()
        path, _, query_string = self.path.partition("?")
        self._query_id, self._encoding, self._timezone = str(uuid.uuid4()), None, self.config.timezone
        reason = self._browser_refusal()
        if reason is not None:  # before anything runs or is read: the body may be a cross-site write
            self.close_connection = True
            self._reply_error(ClickHouseError(497, reason))
            return
        pairs = parse_qsl(query_string, keep_blank_values=True)
        if path in ("/ping", "/replicas_status") or (
            path == "/" and readonly and not any(k == "query" for k, _ in pairs)
        ):
            self._reply_plain(200, "Ok.\n")
            return
        raw = iter(()) if readonly else iter_body(self.rfile, self.headers)
        try:
            if path != "/":
                self._reply_plain(404, f"There is no handle {path}\n\nUse / or /ping for health checks.\n")
                return
            self._serve(readonly, pairs, raw)
        except ClickHouseError as exc:
            self.close_connection = self.close_connection or exc.code == 33
            self._reply_error(exc)
        except OSError:  # the peer went away mid-request; nothing left to tell it
            self.close_connection = True
            return
        except Exception as exc:
            log.exception("HTTP endpoint request failed")
            self._reply_error(ClickHouseError(1001, f"{type(exc).__name__}: {exc}"))
        finally:
            self._drain(raw)

    def _serve(self, readonly: bool, pairs: list[tuple[str, str]], raw: Iterator[bytes]) -> None:
        self._authenticate(RequestArgs.parse(pairs))
        ctype = self.headers.get("Content-Type") or ""
        form = not readonly and ctype.lower().startswith("multipart/form-data")
        if form:
            pairs = pairs + parse_multipart(ctype, read_limited(raw, self.config.max_query_bytes))
        args = RequestArgs.parse(pairs)
        self._read_transport_args(args)
        limit = self.limits.max_body_bytes
        body = iter(()) if readonly or form else decode_body(raw, self.headers.get("Content-Encoding"), limit)
        readonly = readonly or args.transport.get("readonly", "0") not in ("", "0")
        session = args.transport.get("session_id") or None
        timeout, check = _session_timeout(args), args.flag("session_check")
        with self.config.pool.checkout(session, role=self._role, timeout=timeout, check=check) as handle:
            handle.prepare(args.settings, args.transport.get("database") or (None if session else "default"))
            head = args.query.encode() + b"\n" if args.query else b""
            split, head = read_head(head, body, self.limits.max_head_bytes)
            # VALUES rows may hold {name:Type} placeholders: only the query path binds them.
            if isinstance(split, InsertHead) and not (args.params and split.fmt == "Values"):
                data = itertools.chain([head[split.data_offset :]], body)
                self._run_insert(handle, split, data, readonly, bool(args.params))
            else:
                sql = read_limited(body, self.config.max_query_bytes, head)
                self._run_query(handle, args, sql, readonly, session is not None)

    def _authenticate(self, args: RequestArgs) -> None:
        """Every query authenticates, also on loopback: as the writer or the read-only reader.

        Missing or wrong credentials get ClickHouse's AUTHENTICATION_FAILED (516) with HTTP 401,
        which clickhouse-connect reports as ``DatabaseError`` (code 516) and does not retry.
        """
        user, password = credentials(self.headers, args.transport)
        role = self.config.credentials.authenticate(user, password)
        if role is not None:
            self._role = role
            return
        self.close_connection = True  # do not read a body an unauthenticated peer sent
        message = "Authentication failed: password is incorrect, or there is no user with such name"
        error = ClickHouseError(516, f"{(user or 'default')[:64]}: {message}")
        error.status = 401
        raise error

    def _browser_refusal(self) -> str | None:
        """Why a browser's request must not run (see :mod:`fleetlog._browser`); None for other clients."""
        if len(self.headers.get_all("Host") or ()) > 1:
            return "a request with more than one Host header"
        return refusal(self.headers, self.hosts)

    def _read_transport_args(self, args: RequestArgs) -> None:
        """Transport arguments from headers and URL; whatever reaches a response header is checked here."""
        for header, name in (("X-ClickHouse-Database", "database"), ("X-ClickHouse-Format", "default_format")):
            if self.headers.get(header):
                args.transport.setdefault(name, self.headers[header])
        for name in ("compress", "decompress"):
            if args.flag(name):
                message = f"{name}=1 (ClickHouse's own block compression) is not supported; use HTTP compression"
                raise ClickHouseError(48, message)
        args.check_reflected(self.config.formats)
        self._query_id = args.transport.get("query_id") or self._query_id
        self._timezone = args.settings.get("session_timezone") or self._timezone
        if args.flag("enable_http_compression", default=True) and self._compression_pays():
            self._encoding = choose_encoding(self.headers.get("Accept-Encoding"))

    def _compression_pays(self) -> bool:
        """On loopback, compressing costs more CPU than the bytes it saves (see module docs)."""
        policy = self.config.compress_responses
        if policy is not None:
            return policy
        try:
            return not ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            return True

    def _run_insert(
        self, handle: Handle, split: InsertHead, data: Iterator[bytes], readonly: bool, has_params: bool
    ) -> None:
        if readonly:
            raise _readonly_error()
        if has_params:  # send_insert streams the data and binds nothing; never paste values into SQL
            raise ClickHouseError(48, "Query parameters are not supported in INSERT ... FORMAT statements")
        check_insert(handle, split.statement, split.fmt, self._role)
        try:
            statement = split.statement.decode()
        except UnicodeDecodeError:
            raise ClickHouseError(36, "The INSERT statement is not valid UTF-8") from None
        result = handle.insert(statement, split.fmt, (chunk for chunk in data if chunk))
        elapsed = result.elapsed
        self._reply(
            b"",
            summary={"written_rows": result.rows_written, "written_bytes": result.bytes_written, "elapsed": elapsed},
        )

    def _run_query(self, handle: Handle, args: RequestArgs, sql: bytes, readonly: bool, in_session: bool) -> None:
        kind, count = handle.classify(sql)
        if count == 0 and not sql.strip():
            raise ClickHouseError(62, "Empty query")
        if count > 1:
            raise ClickHouseError(62, "Multi-statements are not allowed")
        if readonly and kind != "READ_ONLY":
            raise _readonly_error()
        clause = file_clause(sql)
        if clause:
            raise ClickHouseError(48, f"{clause} is not allowed over HTTP: it would use the server's filesystem")
        check_query(handle, sql, args.params, self._role)
        if kind == "CONTROL":  # USE, SET: the session's database and settings are no longer known
            handle.database = None
        # Sessionless requests must leave no state (SET, USE, temporary tables) on a pooled handle.
        handle.discard = handle.discard or (not in_session and kind != "READ_ONLY")
        fmt = output_format(sql, self.config.formats) or args.transport.get("default_format") or "TabSeparated"
        header = None
        if kind == "READ_ONLY" and fmt.lower() == "native":
            header = lambda: self._native_header(handle, sql, args.params)  # noqa: E731
        if self._may_stream(kind, fmt, args) and self._reply_stream(handle, sql, fmt, args.params, header):
            return
        result = handle.query(sql, fmt, args.params)
        buffer = result.get_memview()  # kept referenced: the view below borrows the engine's buffer
        data = buffer.view() if result.size() else (header() if header else b"")
        self._reply(data, fmt=fmt if kind == "READ_ONLY" or data else None, summary=result_summary(result))

    def _native_header(self, handle: Handle, sql: bytes, params: dict[str, str]) -> bytes:
        """The block clickhouse-server sends for an empty Native result: column names and types, no rows.

        chDB writes nothing at all, and a client then cannot tell an empty table's columns.
        """
        probe = with_output_format(sql, self.config.formats, "RowBinaryWithNamesAndTypes")
        result = handle.query(probe, "RowBinaryWithNamesAndTypes", params)
        return native_header(bytes(result.bytes()))

    def _may_stream(self, kind: str, fmt: str, args: RequestArgs) -> bool:
        """Stream (chunked) only when the client does not wait for the end and can read chunks."""
        if kind != "READ_ONLY" or args.flag("wait_end_of_query") or self.request_version == "HTTP/1.0":
            return False
        return fmt.lower() in _STREAMABLE


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def native_header(row_binary_header: bytes) -> bytes:
    """A zero-row Native block from a RowBinaryWithNamesAndTypes header (count, names, types)."""
    count, pos = _varint(row_binary_header, 0)
    strings = []
    for _ in range(2 * count):
        size, pos = _varint(row_binary_header, pos)
        strings.append(row_binary_header[pos : pos + size])
        pos += size
    out = [_put_varint(count), _put_varint(0)]
    for name, type_ in zip(strings[:count], strings[count:], strict=True):
        out += [_put_varint(len(name)), name, _put_varint(len(type_)), type_]
    return b"".join(out)


def _session_timeout(args: RequestArgs) -> float:
    raw = args.transport.get("session_timeout", "60")
    try:
        timeout = float(raw)
    except ValueError:
        raise ClickHouseError(374, f"Invalid session timeout: {raw!r}") from None
    if not 0 <= timeout <= 3600:
        raise ClickHouseError(374, f"Session timeout {raw} is out of range (0..3600)")
    return timeout


def _readonly_error() -> ClickHouseError:
    message = "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly; use POST"
    return ClickHouseError(164, message)
