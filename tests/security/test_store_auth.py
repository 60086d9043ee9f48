"""The embedded store's endpoint: credentials always, a reader that is read-only in the engine, query limits.

Every attack is a real HTTP request (urllib, or a raw socket where the wire is the point)
against a running :class:`HttpEndpoint` over a real chDB store. chDB allows one store path
per process, so the module serves the session's shared ``chdb-store`` like the unit tests.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from fleetlog import query
from fleetlog.config import Settings
from fleetlog.credentials import StoreUser, load_credentials
from fleetlog.localkafka import free_port
from fleetlog.store.endpoint import HttpEndpoint, QueryLimits
from fleetlog.store.endpoint._protocol import ClickHouseError

ATTACK = "/?query=SELECT+*+FROM+file('/etc/hostname','LineAsString')"
READONLY, TIMEOUT, MEMORY, AUTH = 164, 159, 241, 516


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path_factory.getbasetemp() / 'chdb-store'}")
    client.command("CREATE DATABASE IF NOT EXISTS fleetlog")  # what fleetlog's readers select by default
    yield client
    client.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secure") / "home"


@pytest.fixture(scope="module")
def endpoint(owner: Client, home: Path) -> Iterator[HttpEndpoint]:
    """Served as the sink serves it: this home's credentials, on a port FLEETLOG_HTTP_PORT names."""
    settings = Settings.build(home=home, http_port=free_port())
    with HttpEndpoint(owner, port=settings.store.http_port, credentials=load_credentials(settings)) as ep:
        yield ep


@pytest.fixture
def table(owner: Client) -> Iterator[str]:
    name = f"fleetlog.sec_{uuid.uuid4().hex[:10]}"
    owner.command(f"CREATE TABLE {name} (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    yield name
    owner.command(f"DROP TABLE IF EXISTS {name}")


def request(
    endpoint: HttpEndpoint,
    target: str,
    *,
    user: StoreUser | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request, as curl would send it; ``user`` logs in with Basic auth."""
    headers = dict(headers or {})
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user.name}:{user.password}".encode()).decode()
    req = urllib.request.Request(endpoint.url + target, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def run_sql(endpoint: HttpEndpoint, sql: str, user: StoreUser, **args: str) -> tuple[int, str, bytes]:
    """POST ``sql`` as ``user``: (status, ClickHouse exception code or '', body)."""
    status, headers, data = request(endpoint, "/?" + urlencode(args), user=user, body=sql.encode())
    return status, headers.get("X-ClickHouse-Exception-Code", ""), data


def test_the_issues_attack_without_credentials_gets_401(endpoint: HttpEndpoint) -> None:
    hostname = Path("/etc/hostname").read_bytes().strip()
    status, headers, data = request(endpoint, ATTACK)
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == str(AUTH)
    assert b"Authentication failed" in data and (not hostname or hostname not in data)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-ClickHouse-User": "default"},
        {"X-ClickHouse-User": "fleetlog_reader", "X-ClickHouse-Key": "guess"},
        {"Authorization": "Basic " + base64.b64encode(b"default:").decode()},
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Bearer whatever"},
    ],
)
def test_missing_or_wrong_credentials_get_401_for_reads_and_writes(
    endpoint: HttpEndpoint, table: str, headers: dict[str, str]
) -> None:
    for target, body in ((ATTACK, None), ("/", f"INSERT INTO {table} VALUES (1, 'x')".encode())):
        status, got, _ = request(endpoint, target, body=body, headers=headers)
        assert status == 401 and got["X-ClickHouse-Exception-Code"] == str(AUTH)
    file_write = b"INSERT INTO FUNCTION file('/tmp/fleetlog-attack', 'TSV', 'x String') VALUES ('hi')"
    assert request(endpoint, "/", body=file_write, headers={**headers, "Content-Type": "text/plain"})[0] == 401
    assert not Path("/tmp/fleetlog-attack").exists()


def test_one_users_password_does_not_open_the_other(endpoint: HttpEndpoint) -> None:
    creds = endpoint.credentials
    crossed = [
        StoreUser("reader", creds.reader.name, creds.writer.password),
        StoreUser("writer", creds.writer.name, creds.reader.password),
        StoreUser("writer", creds.writer.name, creds.writer.password + "x"),
        StoreUser("writer", creds.writer.name, ""),
    ]
    for user in crossed:
        assert run_sql(endpoint, "SELECT 1", user)[:2] == (401, str(AUTH))
    # The URL arguments clickhouse-server accepts are checked the same way.
    args = urlencode({"query": "SELECT 1", "user": creds.reader.name, "password": "nope"})
    assert request(endpoint, f"/?{args}")[0] == 401


def test_a_raw_socket_request_without_credentials_gets_401(endpoint: HttpEndpoint) -> None:
    host, port = endpoint.address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET {ATTACK} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401 ")


def test_clickhouse_connect_reports_a_wrong_password_as_code_516(endpoint: HttpEndpoint) -> None:
    host, port = endpoint.address
    started = time.monotonic()
    with pytest.raises(DatabaseError, match="Authentication failed") as refused:
        clickhouse_connect.get_client(host=host, port=port, username="fleetlog_reader", password="wrong")
    assert getattr(refused.value, "code", None) == AUTH and time.monotonic() - started < 5  # no retries


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO {t} VALUES (1, 'x')",
        "CREATE TABLE fleetlog.sec_new (a UInt8) ENGINE = Memory",
        "DROP TABLE {t}",
        "ALTER TABLE {t} DELETE WHERE 1",
        "TRUNCATE TABLE {t}",
    ],
)
def test_the_reader_cannot_write_over_http(endpoint: HttpEndpoint, owner: Client, table: str, sql: str) -> None:
    owner.command(f"INSERT INTO {table} VALUES (7, 'kept')")
    status, code, _ = run_sql(endpoint, sql.format(t=table), endpoint.credentials.reader)
    assert status >= 400 and code in (str(READONLY), "497")  # the engine, or the sandbox before it
    assert owner.query(f"SELECT a, s FROM {table}").result_rows == [(7, "kept")]
    assert not owner.command("EXISTS TABLE fleetlog.sec_new")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO {t} VALUES (1, 'x')",
        "CREATE TABLE fleetlog.sec_new (a UInt8) ENGINE = Memory",
        "DROP TABLE {t}",
        "SET readonly = 0",
        "SET max_execution_time = 0",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_memory_usage = 0",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    ],
)
def test_the_readers_handles_are_read_only_in_the_engine(endpoint: HttpEndpoint, table: str, sql: str) -> None:
    """Below the HTTP layer and any SQL check: the engine itself refuses, on the reader's own chDB handle."""
    pool = endpoint._pool
    assert pool is not None
    with pool.checkout(role="reader") as handle, pytest.raises(ClickHouseError) as refused:
        handle.query(sql.format(t=table).encode(), "TabSeparated", {})
    assert refused.value.code == READONLY, refused.value.text


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        ("SET readonly = 0", {}),
        ("SELECT 1 SETTINGS readonly = 0", {}),
        ("SELECT 1 SETTINGS max_execution_time = 100000", {}),
        ("SELECT 1 SETTINGS max_memory_usage = 0", {}),
        ("SELECT 1", {"max_execution_time": "100000"}),
        ("SELECT 1", {"max_memory_usage": "0"}),
        ("SELECT 1", {"readonly": "0", "max_execution_time": "0"}),
    ],
)
def test_the_reader_cannot_lift_its_limits(endpoint: HttpEndpoint, sql: str, args: dict[str, str]) -> None:
    status, code, data = run_sql(endpoint, sql, endpoint.credentials.reader, **args)
    assert (status, code) == (500, str(READONLY)), data
    assert run_sql(endpoint, "SELECT getSetting('readonly')", endpoint.credentials.reader)[2] == b"1\n"


def test_a_session_id_never_hands_the_reader_a_writers_handle(endpoint: HttpEndpoint) -> None:
    creds, session = endpoint.credentials, f"s{uuid.uuid4().hex[:8]}"
    assert run_sql(endpoint, "CREATE TEMPORARY TABLE mine (a UInt8)", creds.writer, session_id=session)[0] == 200
    assert run_sql(endpoint, "SET max_threads = 1", creds.writer, session_id=session)[0] == 200
    probe = "SELECT getSetting('readonly'), getSetting('max_threads') = 1"
    assert run_sql(endpoint, probe, creds.writer, session_id=session)[2] == b"0\t1\n"
    status, _, data = run_sql(endpoint, probe, creds.reader, session_id=session)
    assert (status, data) == (200, b"1\t0\n")  # a session of its own, read-only
    assert run_sql(endpoint, "EXISTS TEMPORARY TABLE mine", creds.reader, session_id=session)[2] == b"0\n"


def test_the_writer_inserts_and_may_lower_but_not_raise_the_limits(endpoint: HttpEndpoint, table: str) -> None:
    writer = endpoint.credentials.writer
    host, port = endpoint.address
    client = clickhouse_connect.get_client(host=host, port=port, username=writer.name, password=writer.password)
    assert client.insert(table, [[1, "a"], [2, "b"]], column_names=["a", "s"]).written_rows == 2
    assert client.query(f"SELECT count() FROM {table}").result_rows == [(2,)]
    assert run_sql(endpoint, "SELECT getSetting('max_execution_time')", writer, max_execution_time="5")[2] == b"5\n"
    for args in ({"max_execution_time": "100000"}, {"max_execution_time": "0"}, {"max_memory_usage": "0"}):
        status, code, data = run_sql(endpoint, "SELECT 1", writer, **args)
        assert (status, code) == (500, "452") and b"per-query limit" in data
    # The handle the refused request used still has the limits, not the engine's defaults.
    assert run_sql(endpoint, "SELECT getSetting('max_execution_time')", writer)[2] == b"60\n"


def test_a_long_query_is_stopped_for_both_users(owner: Client) -> None:
    limits = QueryLimits(max_execution_seconds=1, max_memory_bytes=64 << 20)
    with HttpEndpoint(owner, port=0, query_limits=limits) as ep:
        for user in (ep.credentials.reader, ep.credentials.writer):
            started = time.monotonic()
            status, code, _ = run_sql(ep, "SELECT count() FROM numbers(100000000000000)", user)
            assert (status, code) == (408, str(TIMEOUT)) and time.monotonic() - started < 10
            status, code, _ = run_sql(ep, "SELECT groupArray(number) FROM numbers(100000000)", user)
            assert code == str(MEMORY)


def test_store_credentials_json_logs_any_clickhouse_client_in(endpoint: HttpEndpoint, home: Path) -> None:
    env = {**os.environ, "FLEETLOG_HOME": str(home), "FLEETLOG_HTTP_PORT": str(endpoint.address[1])}
    printed = {}
    for role, extra in (("reader", []), ("writer", ["--writer"])):
        out = subprocess.run(
            [sys.executable, "-m", "fleetlog", "store", "credentials", "--json", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        printed[role] = json.loads(out)
        assert set(printed[role]) == {"url", "database", "user", "password"}
    clients = {}
    for role, found in printed.items():
        url = urlsplit(found["url"])
        clients[role] = clickhouse_connect.get_client(
            host=url.hostname,
            port=url.port,
            database=found["database"],
            username=found["user"],
            password=found["password"],
        )
    name = f"cred_{uuid.uuid4().hex[:8]}"
    clients["writer"].command(f"CREATE TABLE {name} (a UInt8) ENGINE = MergeTree ORDER BY a")
    try:
        clients["writer"].insert(name, [[1]], column_names=["a"])
        assert clients["reader"].query(f"SELECT a FROM {name}").result_rows == [(1,)]
        with pytest.raises(DatabaseError):
            clients["reader"].insert(name, [[2]], column_names=["a"])
    finally:
        clients["writer"].command(f"DROP TABLE {name}")


def test_fleetlogs_own_readers_log_in_as_the_reader_by_themselves(endpoint: HttpEndpoint, home: Path) -> None:
    """The query API (what the CLI, the dashboard and notebooks use) through clickhouse-connect's every path."""
    settings = Settings.build(home=home, http_port=endpoint.address[1])
    url = query.reader_url(settings)
    assert urlsplit(url).username == "fleetlog_reader"
    assert query.sql("SELECT getSetting('readonly') AS ro", settings=settings).to_dict("records") == [{"ro": 1}]
    assert query.sql("SELECT 'x' AS s", output="arrow", settings=settings).column("s").to_pylist() == ["x"]
    with pytest.raises(Exception, match=r"READONLY|not a read-only statement"):
        query.sql("CREATE TABLE fleetlog.nope (a UInt8) ENGINE = Memory", settings=settings)
