"""The store's HTTP endpoint against browsers and hostile clients, attacked for real over sockets.

Each test performs the attack on a running :class:`HttpEndpoint` (raw sockets where the wire
itself is the point: header bytes, trickled heads, half-open connections) and asserts the
refusal and that nothing happened behind it (no file written, no row inserted). chDB allows
one store path per process, so the module shares the session's ``chdb-store`` like the
endpoint's unit tests.
"""

from __future__ import annotations

import gzip
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from polling import wait_for

from fleetlog.store.endpoint import HttpEndpoint
from fleetlog.store.endpoint._limits import Limits

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path_factory.getbasetemp() / 'chdb-store'}")
    yield client
    client.close()


def serve(owner: Client, **limits: float) -> HttpEndpoint:
    endpoint = HttpEndpoint(owner, port=0, limits=Limits(**limits))  # type: ignore[arg-type]
    endpoint.start()
    return endpoint


@pytest.fixture(scope="module")
def endpoint(owner: Client) -> Iterator[HttpEndpoint]:
    endpoint = serve(owner)
    yield endpoint
    endpoint.stop()


@pytest.fixture
def table(owner: Client) -> Iterator[str]:
    name = f"sec_{uuid.uuid4().hex[:12]}"
    owner.command(f"CREATE TABLE {name} (x Int64) ENGINE = MergeTree ORDER BY x")
    yield name
    owner.command(f"DROP TABLE IF EXISTS {name}")


def writer_headers(endpoint: HttpEndpoint) -> dict[str, str]:
    user = endpoint.credentials.writer
    return {"X-ClickHouse-User": user.name, "X-ClickHouse-Key": user.password}


def exchange(endpoint: HttpEndpoint, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw request bytes, read until the server closes or a whole response arrived."""
    with socket.create_connection(endpoint.address, timeout=timeout) as conn:
        conn.sendall(request)
        return read_response(conn)


def read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 62 if b"chunked" in head.lower() else 0


def request(
    endpoint: HttpEndpoint,
    method: str = "GET",
    target: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on its own connection; (status, lower-cased headers, body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{endpoint.address[1]}", "Connection: close"]
    given = {"Content-Length": str(len(body)), **(headers or {})}
    if "Host" in given:
        lines = [line for line in lines if not line.startswith("Host:")]
    lines += [f"{name}: {value}" for name, value in given.items()]
    raw = exchange(endpoint, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if "chunked" in parsed.get("transfer-encoding", ""):
        payload = dechunk(payload)
    return int(status_line.split()[1]), parsed, payload


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def no_cors(headers: dict[str, str]) -> bool:
    return not any(name.startswith("access-control-") for name in headers)


def test_query_id_cannot_inject_a_header(endpoint: HttpEndpoint) -> None:
    target = "/?query=SELECT%201&query_id=x%0D%0AAccess-Control-Allow-Origin:%20*"
    status, headers, body = request(endpoint, target=target, headers=writer_headers(endpoint))
    assert status == 400 and b"Invalid query_id" in body
    assert no_cors(headers) and "x" not in headers.get("x-clickhouse-query-id", "")
    status, headers, body = request(
        endpoint, target="/?query=SELECT%201&query_id=a.b:c-1_2", headers=writer_headers(endpoint)
    )
    assert status == 200 and body == b"1\n" and headers["x-clickhouse-query-id"] == "a.b:c-1_2"


@pytest.mark.parametrize(
    "argument",
    ["default_format=TSV%0D%0AX-Evil:%201", "session_timezone=UTC%0D%0AX-Evil:%201", "session_id=s%0AX-Evil:%201"],
)
def test_no_client_value_reaches_a_header_unchecked(endpoint: HttpEndpoint, argument: str) -> None:
    status, headers, body = request(endpoint, target=f"/?query=SELECT%201&{argument}", headers=writer_headers(endpoint))
    assert status in (400, 404) and "x-evil" not in headers and b"DB::Exception" in body


def test_a_format_chosen_by_header_is_the_engines_spelling(endpoint: HttpEndpoint) -> None:
    headers = {**writer_headers(endpoint), "X-ClickHouse-Format": "jsoneachrow"}
    status, reply, body = request(endpoint, target="/?query=SELECT%201%20AS%20x", headers=headers)
    assert status == 200 and reply["x-clickhouse-format"] == "JSONEachRow" and body == b'{"x":1}\n'


def test_cross_origin_text_plain_post_writes_nothing(
    endpoint: HttpEndpoint, owner: Client, table: str, tmp_path: Path
) -> None:
    """What any web page can send without a preflight: refused before the engine sees it."""
    target = tmp_path / "written.tsv"
    for sql in (
        f"INSERT INTO FUNCTION file('{target}', 'TSV', 'x String') VALUES ('hi')",
        f"INSERT INTO {table} VALUES (42)",
    ):
        for auth in ({}, writer_headers(endpoint)):  # a browser may even hold the credentials
            headers = {"Origin": EVIL, "Content-Type": "text/plain", **auth}
            status, reply, body = request(endpoint, "POST", "/", headers, sql.encode())
            assert status == 403 and b"cross-origin" in body and b"(ACCESS_DENIED)" in body
            assert reply["x-clickhouse-exception-code"] == "497" and no_cors(reply)
    assert not target.exists()
    assert owner.command(f"SELECT count() FROM {table}") == 0


def test_other_sites_and_rebound_hosts_are_refused(endpoint: HttpEndpoint) -> None:
    port = endpoint.address[1]
    auth = writer_headers(endpoint)
    refused = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "null"},
        {"Host": "evil.example"},
        {"Host": f"evil.example:{port}"},
        {"Host": f"127.0.0.1.evil.example:{port}"},
    ]
    for extra in refused:
        status, headers, body = request(endpoint, target="/?query=SELECT%201", headers={**auth, **extra})
        assert status == 403 and b"ACCESS_DENIED" in body and no_cors(headers), extra
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        status, _, body = request(endpoint, target="/?query=SELECT%201", headers={**auth, "Host": host})
        assert (status, body) == (200, b"1\n"), host
    status, _, body = request(endpoint, target="/?query=SELECT%201", headers={**auth, "Sec-Fetch-Site": "none"})
    assert (status, body) == (200, b"1\n")  # typed into the address bar by the user


def test_never_a_cors_header(endpoint: HttpEndpoint) -> None:
    auth = writer_headers(endpoint)
    replies = [
        request(endpoint, target="/?query=SELECT%201&add_http_cors_header=1", headers=auth),
        request(endpoint, target="/?query=SELEKT", headers=auth),
        request(endpoint, target="/ping"),
        request(endpoint, target="/?query=SELECT%201"),
        request(endpoint, "OPTIONS", "/", {"Origin": EVIL, "Access-Control-Request-Method": "POST"}),
    ]
    assert [status for status, _, _ in replies] == [200, 400, 200, 401, 501]
    for _, headers, _ in replies:
        assert no_cors(headers) and headers["x-content-type-options"] == "nosniff"


def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_a_head_sent_a_byte_at_a_time_costs_linear_time(endpoint: HttpEndpoint, owner: Client, table: str) -> None:
    """3 KB of INSERT head in 1-byte chunks: each chunk used to re-lex the whole head (7 s of CPU)."""
    settings = ", ".join(["input_format_null_as_default = 1"] * 90)
    head = f"INSERT INTO {table} SETTINGS {settings} FORMAT TSV\n".encode()
    assert len(head) > 3000
    body = chunked([head[i : i + 1] for i in range(len(head))] + [b"1\n2\n"])
    lines = [
        "POST / HTTP/1.1",
        f"Host: 127.0.0.1:{endpoint.address[1]}",
        "Transfer-Encoding: chunked",
        "Connection: close",
        *(f"{k}: {v}" for k, v in writer_headers(endpoint).items()),
    ]
    cpu, wall = time.process_time(), time.monotonic()
    reply = exchange(endpoint, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert owner.command(f"SELECT sum(x) FROM {table}") == 3
    assert cpu < 0.5 and wall < 2.0, (cpu, wall)


def closed_after(conn: socket.socket, trickle: bytes | None, deadline: float) -> float:
    """Seconds until the server closes ``conn``; sends ``trickle`` every 0.1 s meanwhile (the attack)."""
    start = time.monotonic()
    conn.settimeout(0.1)
    while time.monotonic() - start < deadline:
        try:
            if trickle:
                conn.sendall(trickle)
            if conn.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:  # reset: closed as well
            return time.monotonic() - start
    raise AssertionError(f"connection still open after {deadline} s")


def test_slowloris_and_idle_connections_are_closed(owner: Client) -> None:
    endpoint = serve(owner, header_timeout_seconds=1.0, idle_timeout_seconds=1.5)
    try:
        with socket.create_connection(endpoint.address) as conn:
            conn.sendall(b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert 0.8 < closed_after(conn, b"X-a: b\r\n", deadline=5) < 2.5
        with socket.create_connection(endpoint.address) as conn:  # never says anything
            assert 1.3 < closed_after(conn, None, deadline=5) < 3.0
    finally:
        endpoint.stop()


def test_connections_beyond_the_cap_get_503(owner: Client) -> None:
    endpoint = serve(owner, max_connections=4)
    held = [socket.create_connection(endpoint.address) for _ in range(4)]
    try:
        for conn in held:  # each one served: its connection is counted
            conn.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_response(conn).startswith(b"HTTP/1.1 200")
        reply = exchange(endpoint, b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503") and b"TOO_MANY_SIMULTANEOUS_QUERIES" in reply
        held.pop().close()
        ok = lambda: exchange(endpoint, b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.1 200")  # noqa: E731
        wait_for(ok, timeout=5)
    finally:
        for conn in held:
            conn.close()
        endpoint.stop()


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_a_decompression_bomb_is_refused_without_inflating(owner: Client, table: str, encoding: str) -> None:
    zeros = b"0\n" * (32 << 20)  # 64 MiB of rows once decompressed, a few KB on the wire
    bomb = zstd.compress(zeros) if encoding == "zstd" else gzip.compress(zeros)
    assert len(bomb) < 1 << 20
    endpoint = serve(owner, max_body_bytes=1 << 20)
    try:
        headers = {**writer_headers(endpoint), "Content-Encoding": encoding}
        target = "/?query=" + quote(f"INSERT INTO {table} FORMAT TSV")
        status, reply, body = request(endpoint, "POST", target, headers, bomb)
        assert status == 413 and b"after decompression" in body and reply["x-clickhouse-exception-code"] == "229"
        assert owner.command(f"SELECT count() FROM {table}") == 0
        spool = Path(endpoint._pool._spool_dir)  # type: ignore[union-attr]
        assert list(spool.iterdir()) == []  # the insert's spool file went with the refusal
    finally:
        endpoint.stop()
