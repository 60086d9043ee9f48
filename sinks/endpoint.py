"""Serve ClickHouse's HTTP interface from the process that owns an embedded chDB store.

chDB lets exactly one process open a store directory. That process (fleetlog's sink)
therefore also answers for the store: :class:`HttpEndpoint` speaks the HTTP protocol of
clickhouse-server, so the query API, the CLI and any ClickHouse client reach the
embedded store with ``clickhouse_connect.get_client(host=..., port=...)`` as if it were
a server. Results are produced by the engine in the format the client asked for
(Native, Arrow, JSON, ...) and passed through untouched; inserts stream into the engine.

Example::

    store = clickhouse_connect.get_client(dsn="chdb:///var/lib/fleetlog")
    with HttpEndpoint(store, port=8123) as endpoint:
        reader = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.address[1])
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

from fleetlog.sinks._engine import HandlePool
from fleetlog.sinks._http_handler import EndpointConfig, RequestHandler

from fleetlog.config import is_loopback

if TYPE_CHECKING:
    from clickhouse_connect.driver import Client

__all__ = ["HttpEndpoint"]

log = logging.getLogger("fleetlog.sink.endpoint")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so ``stop`` can end them.

    Keep-alive connections otherwise park a thread each on a blocking read.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[RequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
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


class HttpEndpoint:
    """ClickHouse-compatible HTTP interface over an in-process chDB store.

    ``client`` is the store owner's ``ChdbClient`` (``get_client(dsn="chdb:///path")``); the
    endpoint takes only its store path from it and opens chDB connections of its own on
    that path, one per in-flight request (and one per HTTP session), so remote queries
    neither wait for nor disturb the owner's calls through ``client``.

    Without a password the endpoint refuses any ``host`` that is not a loopback address
    (``ValueError`` from the constructor): an open store must not be reachable from the
    network. With one, requests must authenticate as ``user`` (HTTP Basic, the
    ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or ``user``/``password`` URL
    arguments), exactly as clickhouse-server accepts them.

    ``compress_responses`` decides whether to honour a client's ``Accept-Encoding``
    (lz4, zstd, gzip, deflate): ``None`` (default) compresses only for peers that are not
    on loopback, because there lz4 costs more CPU than the bytes it saves (measured on
    2 cores: 1M Float64 via ``query_np`` took 37 ms with lz4, 19 ms without). HTTP
    lets a server answer uncompressed to any Accept-Encoding, and ClickHouse clients
    decode whatever ``Content-Encoding`` says. ``True``: always, as clickhouse-server does.
    """

    def __init__(
        self,
        client: Client,
        *,
        host: str = "127.0.0.1",
        port: int = 8123,
        user: str = "default",
        password: str = "",
        compress_responses: bool | None = None,
    ) -> None:
        path = getattr(client, "path", None)
        if not isinstance(path, str):
            raise TypeError(
                "HttpEndpoint serves an embedded store: pass the client from get_client(dsn='chdb:///path')"
            )
        if not password and not is_loopback(host):
            raise ValueError(
                f"refusing to serve the store on non-loopback host {host!r} without a password; "
                "bind to 127.0.0.1 or set a password"
            )
        # chDB compares store paths literally; normalise like clickhouse-connect's ChdbClient does.
        self._connection_string = path if path.startswith((":memory:", "file:")) else os.path.realpath(path)
        self._host, self._port, self._user, self._password = host, port, user, password
        self._compress_responses = compress_responses
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._pool: HandlePool | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Serve in a background daemon thread; ``port=0`` picks a free port. No-op if serving."""
        with self._lock:
            if self._server is not None:
                return
            pool = HandlePool(self._connection_string)
            try:
                config = self._config(pool)
                attrs = {"config": config, "display_name": socket.gethostname()}
                handler = type("BoundRequestHandler", (RequestHandler,), attrs)
                server = _Server((self._host, self._port), handler)
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
            user=self._user,
            password=self._password,
            timezone=timezone,
            formats=formats,
            compress_responses=self._compress_responses,
        )
