"""Serve ClickHouse's HTTP interface from the process that owns an embedded chDB store.

chDB lets exactly one process open a store directory. That process (fleetlog's sink)
therefore also answers for the store: :class:`HttpEndpoint` speaks the HTTP protocol of
clickhouse-server, so the query API, the CLI and any ClickHouse client reach the
embedded store with ``clickhouse_connect.get_client(host=..., port=...)`` as if it were
a server. Results are produced by the engine in the format the client asked for
(Native, Arrow, JSON, ...) and passed through untouched; inserts stream into the engine.

Example::

    store = clickhouse_connect.get_client(dsn="chdb:///var/lib/fleetlog")
    with HttpEndpoint(store, port=8123, credentials=load_credentials(settings)) as endpoint:
        user = endpoint.credentials.reader
        reader = clickhouse_connect.get_client(
            host="127.0.0.1", port=endpoint.address[1], username=user.name, password=user.password
        )
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fleetlog._browser import HostPolicy
from fleetlog.credentials import StoreCredentials, load_credentials
from fleetlog.store.endpoint._engine import HandlePool, QueryLimits
from fleetlog.store.endpoint._handler import EndpointConfig, RequestHandler
from fleetlog.store.endpoint._limits import Limits
from fleetlog.store.endpoint._protocol import ClickHouseError

if TYPE_CHECKING:
    from clickhouse_connect.driver import Client

    from fleetlog.config import Settings

__all__ = ["HttpEndpoint", "QueryLimits"]

log = logging.getLogger("fleetlog.sink.endpoint")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so ``stop`` can end them.

    Keep-alive connections otherwise park a thread each on a blocking read.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[RequestHandler], limits: Limits) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.limits = limits
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to ``limits.max_connections``; beyond that a 503 and close."""
        with self._connections_lock:
            full = len(self._connections) >= self.limits.max_connections
            if not full:
                self._connections.add(request)
        if full:
            log.warning("HTTP endpoint: %d connections open, refusing one more", self.limits.max_connections)
            _refuse_connection(request, self.limits.max_connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke outside a request (client gone): not worth a traceback."""
        log.debug("HTTP endpoint connection from %s failed", client_address[0], exc_info=True)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _refuse_connection(request: socket.socket, limit: int) -> None:
    """Answer a connection over the cap without a thread: a short 503, sent without waiting."""
    error = ClickHouseError(202, f"Too many simultaneous connections (limit {limit}); retry later")
    body = (error.text + "\n").encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        f"X-ClickHouse-Exception-Code: 202\r\nRetry-After: 1\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        request.settimeout(0.5)
        request.sendall(head.encode() + body)


class HttpEndpoint:
    """ClickHouse-compatible HTTP interface over an in-process chDB store.

    ``client`` is the store owner's ``ChdbClient`` (``get_client(dsn="chdb:///path")``); the
    endpoint takes only its store path from it and opens chDB connections of its own on
    that path, one per in-flight request (and one per HTTP session), so remote queries
    neither wait for nor disturb the owner's calls through ``client``.

    Every query must authenticate, also on loopback (HTTP Basic, the
    ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or ``user``/``password`` URL
    arguments, exactly as clickhouse-server accepts them), as one of ``credentials``' two
    users: the writer (the sinks: inserts, migrations) or the reader, whose chDB handles
    are ``readonly = 1`` in the engine. Anything else gets HTTP 401. ``credentials``
    defaults to fresh random ones, readable from :attr:`credentials` (a test's endpoint);
    fleetlog's processes pass :func:`fleetlog.credentials.load_credentials`' pair.
    ``query_limits`` bounds each query's time and memory on both users' handles.

    ``compress_responses`` decides whether to honour a client's ``Accept-Encoding``
    (lz4, zstd, gzip, deflate): ``None`` (default) compresses only for peers that are not
    on loopback, because there lz4 costs more CPU than the bytes it saves (measured on
    2 cores: 1M Float64 via ``query_np`` took 37 ms with lz4, 19 ms without). HTTP
    lets a server answer uncompressed to any Accept-Encoding, and ClickHouse clients
    decode whatever ``Content-Encoding`` says. ``True``: always, as clickhouse-server does.

    Browsers are no clients of the endpoint: a request that carries an ``Origin``, comes
    from another site (``Sec-Fetch-Site``) or names a ``Host`` the endpoint is not bound
    to is refused (403) before anything runs (see :mod:`fleetlog._browser`). ``limits``
    (:class:`~fleetlog.store.endpoint._limits.Limits`) bounds connections, the time a
    request head may take and the decompressed body size.
    """

    def __init__(
        self,
        client: Client,
        *,
        host: str = "127.0.0.1",
        port: int = 8123,
        credentials: StoreCredentials | None = None,
        query_limits: QueryLimits | None = None,
        limits: Limits | None = None,
        compress_responses: bool | None = None,
    ) -> None:
        path = getattr(client, "path", None)
        if not isinstance(path, str):
            raise TypeError(
                "HttpEndpoint serves an embedded store: pass the client from get_client(dsn='chdb:///path')"
            )
        # chDB compares store paths literally; normalise like clickhouse-connect's ChdbClient does.
        self._connection_string = path if path.startswith((":memory:", "file:")) else os.path.realpath(path)
        self._host, self._port = host, port
        self.credentials = credentials or StoreCredentials.generate()
        self._query_limits = query_limits or QueryLimits()
        self.limits = limits or Limits()
        self._compress_responses = compress_responses
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._pool: HandlePool | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, client: Client, settings: Settings) -> HttpEndpoint:
        """The endpoint a fleetlog process serves: its address, the home's credentials, the query limits."""
        return cls(
            client,
            host=settings.store.http_host,
            port=settings.store.http_port,
            credentials=load_credentials(settings),
            query_limits=QueryLimits(
                max_execution_seconds=settings.store.max_query_seconds,
                max_memory_bytes=settings.store.max_query_memory_bytes,
            ),
        )

    def start(self) -> None:
        """Serve in a background daemon thread; ``port=0`` picks a free port. No-op if serving."""
        with self._lock:
            if self._server is not None:
                return
            pool = HandlePool(self._connection_string, limits=self._query_limits)
            try:
                config = self._config(pool)
                attrs = {
                    "config": config,
                    "display_name": socket.gethostname(),
                    "limits": self.limits,
                    "hosts": HostPolicy.for_bind(self._host),
                }
                handler = type("BoundRequestHandler", (RequestHandler,), attrs)
                server = _Server((self._host, self._port), handler, self.limits)
            except BaseException:
                pool.close()
                raise
            self._pool, self._server = pool, server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.25},
                name=f"fleetlog-http-{server.server_port}",
                daemon=True,
            )
            self._thread.start()
        log.info("serving ClickHouse HTTP interface for %s at %s", self._connection_string, self.url)

    def stop(self) -> None:
        """Stop serving, end open connections and close the endpoint's chDB handles. Idempotent."""
        with self._lock:
            server, thread, pool = self._server, self._thread, self._pool
            self._server = self._thread = self._pool = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if pool is not None:
            pool.close()
        log.info("stopped ClickHouse HTTP interface at %s:%s", *server.server_address[:2])

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) being served; the port is the real one when started with ``port=0``."""
        server = self._server
        if server is None:
            return self._host, self._port
        return self._host, int(server.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def __enter__(self) -> HttpEndpoint:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _config(self, pool: HandlePool) -> EndpointConfig:
        """Read once what every response reports: the engine's timezone and formats."""
        with pool.checkout() as handle:
            timezone = handle.query(b"SELECT timezone()", "TabSeparated", {}).bytes().decode().strip()
            names = handle.query(b"SELECT name FROM system.formats WHERE is_output", "TabSeparated", {})
        formats = {name.lower(): name for name in names.bytes().decode().split()}
        return EndpointConfig(
            pool=pool,
            credentials=self.credentials,
            timezone=timezone,
            formats=formats,
            compress_responses=self._compress_responses,
        )
