"""The store owner's HTTP endpoint, driven by the clients that will use it.

Everything goes through clickhouse-connect's HTTP client (what fleetlog's query API and
CLI use) or raw urllib3 where the wire itself is the point (status codes, headers).
chDB allows one store path per process, so the module shares one store under the
session's base temp dir (other modules following the same rule get the same path) and
every test uses its own table names.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import clickhouse_connect
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import urllib3
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from fleetlog.store.endpoint import HttpEndpoint
from fleetlog.store.endpoint._sqlscan import (
    NEED_MORE,
    InsertHead,
    output_format,
    split_insert,
    with_infile,
    with_output_format,
)

HOSTILE = [
    "it's",
    "back\\slash",
    "new\nline",
    "tab\tand\rcr",
    "'; DROP TABLE x; --",
    "{other:String}",
    "\\'; SELECT 1; --",
    'quote" and `tick`',
    "unicode ✓ 日本",
    "",
]


@pytest.fixture(scope="module")
def store_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path = tmp_path_factory.getbasetemp() / "chdb-store"
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def endpoint(store_client: Client) -> Iterator[HttpEndpoint]:
    with HttpEndpoint(store_client, port=0) as ep:
        yield ep


def login(endpoint: HttpEndpoint, role: str = "writer") -> dict[str, str]:
    """clickhouse-connect's keyword arguments to log in to ``endpoint`` as ``role``."""
    user = endpoint.credentials.writer if role == "writer" else endpoint.credentials.reader
    return {"username": user.name, "password": user.password}


@pytest.fixture
def http(endpoint: HttpEndpoint) -> Iterator[Client]:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.address[1], **login(endpoint))
    yield client
    client.close()


@pytest.fixture
def table(store_client: Client) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    store_client.command(f"DROP TABLE IF EXISTS {name}")


def raw(
    endpoint: HttpEndpoint,
    method: str = "POST",
    query: str = "",
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    *,
    auth: bool = True,
    **args: str,
) -> urllib3.BaseHTTPResponse:
    """A bare HTTP request, for what clickhouse-connect hides: statuses and headers (as the writer)."""
    params = {"query": query, **args} if query else args
    if auth and not (headers or {}).keys() & {"Authorization", "X-ClickHouse-User"} and "user" not in args:
        writer = endpoint.credentials.writer
        basic = base64.b64encode(f"{writer.name}:{writer.password}".encode()).decode()
        headers = {**(headers or {}), "Authorization": f"Basic {basic}"}
    url = f"{endpoint.url}/?{urlencode(params)}"
    return urllib3.request(method, url, body=body, headers=headers, retries=False)


def test_handshake_and_simple_query(http: Client, store_client: Client, endpoint: HttpEndpoint) -> None:
    assert http.server_version == store_client.server_version
    assert http.ping()
    assert http.query("SELECT number FROM numbers(5)").result_rows == [(i,) for i in range(5)]
    assert http.command("SELECT 1") == 1
    assert endpoint.url == f"http://127.0.0.1:{endpoint.address[1]}"


def test_ping(endpoint: HttpEndpoint) -> None:
    for path in ("/ping", "/"):
        response = urllib3.request("GET", endpoint.url + path)
        assert (response.status, response.data) == (200, b"Ok.\n")
    assert urllib3.request("GET", endpoint.url + "/nope").status == 404


def test_query_df_types(http: Client, store_client: Client, table: str) -> None:
    store_client.command(
        f"CREATE TABLE {table} (i UInt32, s String, f Float64, ts DateTime64(3, 'UTC'), lc LowCardinality(String),"
        " n Nullable(Int64), arr Array(String)) ENGINE = MergeTree ORDER BY i"
    )
    store_client.command(
        f"INSERT INTO {table} VALUES (1, 'a', nan, '2024-05-06 07:08:09.123', 'x', NULL, ['p', 'q']),"
        " (2, 'b\\'c', -1.5, '2025-01-01 00:00:00.001', 'y', 42, [])"
    )
    got = http.query_df(f"SELECT * FROM {table} ORDER BY i")
    want = store_client.query_df(f"SELECT * FROM {table} ORDER BY i")
    pd.testing.assert_frame_equal(got, want)
    assert np.isnan(got["f"][0]) and got["n"].isna().tolist() == [True, False]
    assert got["ts"][0].tz_localize(None) == pd.Timestamp("2024-05-06 07:08:09.123")
    assert got["arr"].tolist() == [["p", "q"], []]


def test_query_np_and_arrow(http: Client) -> None:
    values = http.query_np("SELECT toFloat64(number) / 4 AS x FROM numbers(100000)")
    assert values.shape[0] == 100000 and values[-1][0] == 99999 / 4
    arrow = http.query_arrow("SELECT number AS n, toString(number) AS s FROM numbers(1000)")
    assert arrow.num_rows == 1000 and arrow.column_names == ["n", "s"]


@pytest.mark.parametrize("value", HOSTILE)
def test_parameters_are_bound_server_side(http: Client, store_client: Client, table: str, value: str) -> None:
    assert http.query("SELECT {v:String} AS v", parameters={"v": value}).result_rows == [(value,)]
    store_client.command(f"CREATE TABLE {table} (v String) ENGINE = MergeTree ORDER BY v")
    http.command(f"INSERT INTO {table} VALUES ({{v:String}})", parameters={"v": value})
    assert store_client.query(f"SELECT v FROM {table}").result_rows == [(value,)]
    assert http.query(
        f"SELECT count() FROM {table} WHERE v = {{v:String}}", parameters={"v": value + "'"}
    ).result_rows == [(0,)]


def test_long_and_identifier_parameters(http: Client, store_client: Client, endpoint: HttpEndpoint, table: str) -> None:
    store_client.command(f"CREATE TABLE {table} (v String) ENGINE = Memory")
    long_value = "x'\\\n" * 3000  # over clickhouse-connect's URL limit: sent as a multipart form
    rows = http.query("SELECT {v:String}, length({v:String})", parameters={"v": long_value}).result_rows
    assert rows == [(long_value, len(long_value))]
    assert http.query("SELECT count() FROM {t:Identifier}", parameters={"t": table}).result_rows == [(0,)]
    form = clickhouse_connect.get_client(
        host="127.0.0.1", port=endpoint.address[1], form_encode_query_params=True, **login(endpoint)
    )
    assert form.query("SELECT {v:String}", parameters={"v": HOSTILE[4]}).result_rows == [(HOSTILE[4],)]


def test_insert_over_http_is_read_by_the_owner(http: Client, store_client: Client, table: str) -> None:
    store_client.command(f"CREATE TABLE {table} (a UInt64, s String, f Float64) ENGINE = MergeTree ORDER BY a")
    summary = http.insert(table, [[1, "one", 1.5], [2, "two", 2.5]], column_names=["a", "s", "f"])
    assert summary.written_rows == 2
    big = pd.DataFrame({"a": np.arange(10, 300_010), "s": "x", "f": np.random.default_rng(0).random(300_000)})
    assert http.insert_df(table, big).written_rows == 300_000  # several blocks: several lz4 frames
    assert store_client.query(f"SELECT count(), sum(a) FROM {table}").result_rows == [(300_002, 3 + int(big.a.sum()))]


@pytest.mark.parametrize("compress", [False, True, "lz4", "zstd", "gzip"])
def test_compression(store_client: Client, table: str, compress: bool | str) -> None:
    store_client.command(f"CREATE TABLE {table} (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    with HttpEndpoint(store_client, port=0, compress_responses=True) as ep:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.address[1], compress=compress, **login(ep))
        client.insert(table, [[i, f"s{i}"] for i in range(50_000)], column_names=["a", "s"])
        assert client.query(f"SELECT sum(a), max(s) FROM {table}").result_rows == [(sum(range(50_000)), "s9999")]
        assert client.query_np(f"SELECT a FROM {table} ORDER BY a")[:, 0].tolist() == list(range(50_000))
        response = raw(ep, body=f"SELECT a FROM {table} FORMAT TSV", headers={"Accept-Encoding": "gzip"})
        assert response.headers.get("Content-Encoding") == "gzip"  # urllib3 decodes it
        assert response.data.split() == [str(i).encode() for i in range(50_000)]


def test_loopback_responses_are_not_compressed_by_default(endpoint: HttpEndpoint) -> None:
    response = raw(endpoint, body="SELECT 1", headers={"Accept-Encoding": "lz4"})
    assert response.headers.get("Content-Encoding") is None and response.data == b"1\n"


def test_command_ddl(http: Client, store_client: Client, table: str) -> None:
    http.command(f"CREATE TABLE {table} (a UInt8) ENGINE = MergeTree ORDER BY a")
    assert store_client.command(f"EXISTS TABLE {table}") == 1
    http.command(f"ALTER TABLE {table} ADD COLUMN b String")
    assert [c[0] for c in http.query(f"DESCRIBE TABLE {table}").result_rows] == ["a", "b"]
    http.command(f"DROP TABLE {table}")
    assert store_client.command(f"EXISTS TABLE {table}") == 0


def test_errors_raise_database_error(http: Client, endpoint: HttpEndpoint) -> None:
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE") as info:
        http.query("SELECT * FROM no_such_table_here")
    assert info.value.code == 60
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        http.command("SELEC 1")
    response = raw(endpoint, body="SELECT * FROM no_such_table_here")
    assert response.status == 404 and response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert response.data.startswith(b"Code: 60. DB::Exception:")
    response = raw(endpoint, body="SELECT 1; SELECT 2")
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"


def test_settings_apply_to_one_query_only(http: Client, store_client: Client, table: str) -> None:
    with pytest.raises(DatabaseError, match="TOO_MANY_ROWS"):
        http.query("SELECT number FROM numbers(100)", settings={"max_result_rows": 10, "result_overflow_mode": "throw"})
    assert len(http.query("SELECT number FROM numbers(100)").result_rows) == 100
    with pytest.raises(DatabaseError, match="UNKNOWN_SETTING"):
        http.query("SELECT 1", settings={"no_such_setting_xyz": 1})
    assert http.query("SELECT 1").result_rows == [(1,)]
    store_client.command(
        f"CREATE TABLE {table} (a UInt64) ENGINE = MergeTree ORDER BY a"
        " SETTINGS non_replicated_deduplication_window = 100"
    )
    for _ in range(2):
        http.insert(table, [[1], [2]], column_names=["a"], settings={"insert_deduplication_token": "topic:0:1:2"})
    assert store_client.query(f"SELECT count() FROM {table}").result_rows == [(2,)]


def test_sessions_keep_state_and_plain_requests_do_not(endpoint: HttpEndpoint) -> None:
    port = endpoint.address[1]
    first = clickhouse_connect.get_client(host="127.0.0.1", port=port, **login(endpoint))
    other = clickhouse_connect.get_client(host="127.0.0.1", port=port, **login(endpoint))
    first.command("SET max_threads = 1")
    first.command("CREATE TEMPORARY TABLE tmp_session (a UInt8)")
    assert first.command("SELECT getSetting('max_threads')") == 1
    assert first.command("EXISTS TEMPORARY TABLE tmp_session") == 1
    assert other.command("SELECT getSetting('max_threads')") != 1
    plain = clickhouse_connect.get_client(host="127.0.0.1", port=port, autogenerate_session_id=False, **login(endpoint))
    plain.command("SET max_threads = 1")
    assert all(plain.command("SELECT getSetting('max_threads')") != 1 for _ in range(5))


def test_plain_requests_leave_no_state_and_server_files_stay_out_of_reach(endpoint: HttpEndpoint) -> None:
    plain = clickhouse_connect.get_client(
        host="127.0.0.1", port=endpoint.address[1], autogenerate_session_id=False, **login(endpoint)
    )
    plain.command("CREATE TEMPORARY TABLE tmp_plain (a UInt8)")
    assert all(plain.command("EXISTS TEMPORARY TABLE tmp_plain") == 0 for _ in range(3))
    for sql in ("SELECT 1 INTO OUTFILE '/tmp/fleetlog-endpoint-test'", "INSERT INTO t FROM INFILE '/etc/passwd'"):
        with pytest.raises(DatabaseError, match="not allowed over HTTP"):
            plain.command(sql)


def test_database_argument(http: Client, store_client: Client, endpoint: HttpEndpoint) -> None:
    database = f"db_{uuid.uuid4().hex[:8]}"
    store_client.command(f"CREATE DATABASE {database}")
    try:
        store_client.command(f"CREATE TABLE {database}.t (a UInt8) ENGINE = Memory")
        scoped = clickhouse_connect.get_client(
            host="127.0.0.1", port=endpoint.address[1], database=database, **login(endpoint)
        )
        scoped.insert("t", [[7]], column_names=["a"])
        assert scoped.query("SELECT a, currentDatabase() FROM t").result_rows == [(7, database)]
        assert http.query("SELECT currentDatabase()").result_rows == [("default",)]
    finally:
        store_client.command(f"DROP DATABASE {database}")


def test_wire_details(endpoint: HttpEndpoint, store_client: Client, table: str) -> None:
    response = raw(endpoint, body="SELECT 1 AS a FORMAT JSONEachRow", query_id="q-1")
    assert response.data == b'{"a":1}\n'
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert response.headers["X-ClickHouse-Query-Id"] == "q-1"
    assert response.headers["X-ClickHouse-Timezone"]
    assert raw(endpoint, body="SELECT 1, 'a'", default_format="CSV").data == b'1,"a"\n'
    assert raw(endpoint, "GET", query="SELECT 2").data == b"2\n"
    response = raw(endpoint, "GET", query=f"CREATE TABLE {table} (a UInt8) ENGINE = Memory")
    assert response.headers["X-ClickHouse-Exception-Code"] == "164"  # GET is read-only
    raw(endpoint, query=f"CREATE TABLE {table} (a UInt8, s String) ENGINE = Memory")
    response = raw(endpoint, body=b"1\tx\n2\ty\n", query=f"INSERT INTO {table} FORMAT TSV")
    assert response.status == 200 and '"written_rows":"2"' in response.headers["X-ClickHouse-Summary"]
    raw(endpoint, body=f"INSERT INTO {table} VALUES (3, 'z')")
    response = raw(endpoint, body=b"4\tw\n", query="INSERT INTO {t:Identifier} FORMAT TSV", param_t=table)
    assert response.headers["X-ClickHouse-Exception-Code"] == "48"  # streamed data: no parameters
    assert store_client.query(f"SELECT a, s FROM {table} ORDER BY a").result_rows == [(1, "x"), (2, "y"), (3, "z")]


def test_authentication(endpoint: HttpEndpoint) -> None:
    """Everywhere clickhouse-server reads credentials; anything else is 401 (the attacks: tests/security)."""
    port, writer = endpoint.address[1], endpoint.credentials.writer
    good = clickhouse_connect.get_client(host="127.0.0.1", port=port, **login(endpoint, "reader"))
    assert good.command("SELECT 1") == 1
    with pytest.raises(DatabaseError, match="Authentication failed"):
        clickhouse_connect.get_client(host="127.0.0.1", port=port, username=writer.name, password="wrong")
    with pytest.raises(DatabaseError, match="Authentication failed"):
        clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default", password=writer.password)
    response = raw(endpoint, body="SELECT 1", auth=False)
    assert response.status == 401 and response.headers["X-ClickHouse-Exception-Code"] == "516"
    key = {"X-ClickHouse-User": writer.name, "X-ClickHouse-Key": writer.password}
    assert raw(endpoint, body="SELECT 1", headers=key).data == b"1\n"
    assert raw(endpoint, body="SELECT 1", user=writer.name, password=writer.password).data == b"1\n"
    basic = "Basic " + base64.b64encode(f"{writer.name}:{writer.password}".encode()).decode()
    assert raw(endpoint, body="SELECT 1", headers={"Authorization": basic}).data == b"1\n"
    assert urllib3.request("GET", endpoint.url + "/ping").data == b"Ok.\n"


def test_an_endpoint_without_given_credentials_makes_its_own(store_client: Client) -> None:
    first, second = HttpEndpoint(store_client, port=0), HttpEndpoint(store_client, host="0.0.0.0", port=0)
    assert first.credentials.writer.password != second.credentials.writer.password
    assert len(first.credentials.reader.password) >= 40
    assert first.credentials.writer.password not in repr(first.credentials)


def test_concurrent_queries_while_inserting(store_client: Client, endpoint: HttpEndpoint, table: str) -> None:
    store_client.command(f"CREATE TABLE {table} (a UInt64) ENGINE = MergeTree ORDER BY a")
    failures: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.address[1], **login(endpoint))
        last = 0
        try:
            while not done.is_set():
                count = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
                assert count >= last and count % 1000 == 0
                last = count
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for batch in range(20):
        store_client.insert(table, [[batch * 1000 + i] for i in range(1000)], column_names=["a"])
        time.sleep(0.01)
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    assert store_client.query(f"SELECT count() FROM {table}").result_rows == [(20_000,)]


def test_streaming_queries(http: Client) -> None:
    with http.query_rows_stream("SELECT number FROM numbers(300000)") as stream:
        assert sum(row[0] for row in stream) == sum(range(300_000))
    with (
        pytest.raises(Exception, match="Code: 395"),
        http.query_rows_stream(
            "SELECT throwIf(number = 200000, 'boom') FROM numbers(300000)", settings={"max_block_size": 1000}
        ) as stream,
    ):
        for _ in stream:
            pass


def test_stop_is_idempotent(store_client: Client) -> None:
    ep = HttpEndpoint(store_client, port=0)
    ep.start()
    ep.start()
    port = ep.address[1]
    assert urllib3.request("GET", f"http://127.0.0.1:{port}/ping").status == 200
    ep.stop()
    ep.stop()
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.request("GET", f"http://127.0.0.1:{port}/ping", retries=False)


@pytest.mark.parametrize(
    ("sql", "fmt", "data"),
    [
        (b"INSERT INTO t (a, b) FORMAT Native\n\x0a\x01", "Native", b"\x0a\x01"),
        (b"insert into format format TSV\r\n1\t2", "TSV", b"1\t2"),
        (b"INSERT INTO t SETTINGS x = 'FORMAT' VALUES (1)", "Values", b" (1)"),
        (b"INSERT INTO `FORMAT x` /* FORMAT y */ FORMAT CSV 1,2", "CSV", b"1,2"),
    ],
)
def test_split_insert(sql: bytes, fmt: str, data: bytes) -> None:
    split = split_insert(sql, at_eof=True)
    assert isinstance(split, InsertHead) and split.fmt == fmt and sql[split.data_offset :] == data


def test_split_insert_needs_more_and_non_inserts() -> None:
    assert split_insert(b"INSERT INTO t FORMAT Nat", at_eof=False) is NEED_MORE
    assert split_insert(b"INSERT INTO t FORMAT Native", at_eof=False) is NEED_MORE
    assert split_insert(b"INSERT INTO t VALUES ('it''s", at_eof=False) is not NEED_MORE
    assert split_insert(b"INSERT INTO t SELECT 1 FORMAT TSV", at_eof=True) is None
    assert split_insert(b"SELECT 'INSERT'", at_eof=True) is None
    formats = {"json": "JSON", "native": "Native"}
    assert output_format(b"SELECT format FROM t", formats) is None
    assert output_format(b"SELECT 'FORMAT JSON' FORMAT Native", formats) == "Native"
    assert output_format(b"SELECT 1 format json SETTINGS a = 1", formats) == "JSON"


def test_an_empty_native_result_keeps_its_columns(http: Client, store_client: Client, table: str) -> None:
    store_client.command(f"CREATE TABLE {table} (a UInt32, b LowCardinality(String)) ENGINE = MergeTree ORDER BY a")
    for settings in ({}, {"wait_end_of_query": 1}):  # streamed and whole replies
        result = http.query(f"SELECT * FROM {table} WHERE a > {{n:UInt32}}", parameters={"n": 5}, settings=settings)
        assert result.column_names == ("a", "b") and result.result_rows == []
        assert [t.name for t in result.column_types] == ["UInt32", "LowCardinality(String)"]
    assert http.query_arrow(f"SELECT a FROM {table}").schema.names == ["a"]


def test_an_insert_the_table_refuses_fails_instead_of_vanishing(http: Client, store_client: Client, table: str) -> None:
    # chDB's streaming insert reports success for blocks the table then refuses; the endpoint must not.
    store_client.command(
        f"CREATE TABLE {table} (ts DateTime, a UInt32) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY a"
    )
    months = pd.DataFrame(
        {"ts": pd.date_range("2001-01-01", periods=150, freq="31D"), "a": np.arange(150, dtype=np.uint32)}
    )
    with pytest.raises(DatabaseError, match="Code: 252"):
        http.insert_df(table, months)
    with pytest.raises(DatabaseError, match="Code: 252"):
        http.insert_arrow(table, pa.Table.from_pandas(months, preserve_index=False))
    assert store_client.query(f"SELECT count() FROM {table}").result_rows == [(0,)]
    http.insert_df(table, months.iloc[:3])
    http.insert(table, [[months.ts[3], 3]], column_names=["ts", "a"], settings={"async_insert": 0})
    assert store_client.query(f"SELECT count() FROM {table}").result_rows == [(4,)]


def test_with_infile_and_output_format() -> None:
    assert with_infile(b"INSERT INTO t (a, b) SETTINGS x = 'FORMAT'", "/tmp/b") == (
        b"INSERT INTO t (a, b) FROM INFILE '/tmp/b' SETTINGS x = 'FORMAT'"
    )
    assert (
        with_infile(b"INSERT INTO FUNCTION f('SETTINGS')", "/x'y")
        == b"INSERT INTO FUNCTION f('SETTINGS') FROM INFILE '/x\\'y'"
    )
    formats = {"json": "JSON", "native": "Native"}
    assert (
        with_output_format(b"SELECT 'FORMAT JSON' FORMAT Native", formats, "TSV") == b"SELECT 'FORMAT JSON' FORMAT TSV"
    )
    assert with_output_format(b"SELECT 1", formats, "TSV") == b"SELECT 1"


def test_rowbinary_insert_body(endpoint: HttpEndpoint, store_client: Client, table: str) -> None:
    store_client.command(f"CREATE TABLE {table} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    body = b"".join(int(i).to_bytes(4, "little") + bytes([len(s)]) + s for i, s in [(1, b"x"), (2, b"yz")])
    response = raw(endpoint, query=f"INSERT INTO {table} FORMAT RowBinary", body=body)
    assert response.status == 200, response.data
    assert store_client.query(f"SELECT a, b FROM {table} ORDER BY a").result_rows == [(1, "x"), (2, "yz")]


def _hold_session(pool, session_id: str, seconds: float) -> None:
    """Hold ``session_id`` in another thread for ``seconds``; returns once it is held."""
    held = threading.Event()

    def holder() -> None:
        with pool.checkout(session_id):
            held.set()
            time.sleep(seconds)

    threading.Thread(target=holder, daemon=True).start()
    assert held.wait(5)


def test_a_sessions_next_request_waits_for_the_previous_one_to_finish(endpoint: HttpEndpoint, monkeypatch) -> None:
    from fleetlog.store.endpoint import _engine
    from fleetlog.store.endpoint._protocol import ClickHouseError

    pool = endpoint._pool
    _hold_session(pool, "s-next", 0.3)  # a handler still writing its reply
    started = time.monotonic()
    with pool.checkout("s-next"):
        assert time.monotonic() - started >= 0.2  # waited for it rather than refusing
    monkeypatch.setattr(_engine, "SESSION_WAIT_SECONDS", 0.1)
    _hold_session(pool, "s-busy", 1.0)  # truly concurrent use of one session
    with pytest.raises(ClickHouseError) as refused, pool.checkout("s-busy"):
        pass
    assert refused.value.code == 373
