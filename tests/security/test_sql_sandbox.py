"""The endpoint's SQL sandbox, fuzzed against the engine's own parser.

Every statement here goes through ``check_query`` on a real chDB handle, exactly as the HTTP
handler calls it; the hostile ones are rewritten many ways (case, comments, whitespace,
quoting, nesting in subqueries, unions, views, joins, ``IN``, CTEs, arguments built with
``format()``/``concat()``) and each spelling must still be refused, while the same shapes
around harmless table functions stay allowed. A final check runs the refused statements'
targets: the files they name were never read or written.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import chdb
import pytest

from fleetlog.store.endpoint._engine import Handle
from fleetlog.store.endpoint._protocol import ClickHouseError
from fleetlog.store.endpoint._sandbox import check_insert, check_query


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handle]:
    """One of the endpoint's own chDB handles, in a database of its own on the session's one store path."""
    handle = Handle(chdb.connect(str(tmp_path_factory.getbasetemp() / "chdb-store")))
    database = f"sandbox{uuid.uuid4().hex[:8]}"
    handle.query(f"CREATE DATABASE {database}".encode(), "TabSeparated", {})
    handle.prepare({}, database)
    handle.query(b"CREATE TABLE t (x Int64, s String) ENGINE = MergeTree ORDER BY x", "TabSeparated", {})
    yield handle
    handle.query(f"DROP DATABASE {database}".encode(), "TabSeparated", {})
    handle.close()


def refused(handle: Handle, sql: str, role: str = "writer", params: dict[str, str] | None = None) -> bool:
    try:
        check_query(handle, sql.encode(), params or {}, role)  # type: ignore[arg-type]
    except ClickHouseError as exc:
        assert exc.code == 497, exc.text  # ACCESS_DENIED: refused by the sandbox, not by a syntax error
        return True
    return False


HOSTILE_SOURCES = [
    "file('{path}', 'LineAsString')",
    "url('http://127.0.0.1:9/x', 'CSV', 'x String')",
    "executable('cat {path}', 'TSV', 'x String')",
    "remote('127.0.0.1', system.one)",
    "remoteSecure('127.0.0.1', system.one)",
    "cluster('default', system.one)",
    "s3('http://127.0.0.1:9/b/k', 'CSV')",
    "hdfs('hdfs://127.0.0.1:9/x', 'TSV')",
    "mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "mongodb('127.0.0.1:9', 'd', 'c', 'u', 'p', 'x String')",
    "sqlite('{path}', 't')",
    "jdbc('jdbc:x', 't')",
    "odbc('DSN=x', 't')",
    "azureBlobStorage('http://127.0.0.1:9', 'c', 'b')",
    "python(secret)",
    "urlCluster('default', 'http://127.0.0.1:9/x')",
    "file(format('{{}}', '{path}'), 'LineAsString')",
    "file(concat('/et', 'c/hostname'), 'LineAsString')",
]
HARMLESS_SOURCES = [
    "numbers(3)",
    "values('x String', 'a')",
    "t",
    "system.one",
    "zeros(2)",
    "generateRandom('x Int8', 1)",
]


def _spell(name: str, rng: random.Random) -> str:
    """One of the spellings a client could use for a function name."""
    cased = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
    return rng.choice([cased, f"`{cased}`", f'"{cased}"'])


def _gap(rng: random.Random) -> str:
    return rng.choice([" ", "  ", "\t", "\n", " /* c */ ", "/**/", " -- c\n", " # c\n"])


def _shapes(source: str, rng: random.Random) -> list[str]:
    """The source in every place a table can stand in a statement, spaced and commented at random."""
    g = lambda: _gap(rng)  # noqa: E731
    return [
        f"SELECT{g()}*{g()}FROM{g()}{source}",
        f"SELECT * FROM (SELECT * FROM {source}){g()}",
        f"SELECT 1 UNION ALL SELECT count() FROM {source}",
        f"SELECT * FROM t WHERE x IN (SELECT 1 FROM {source})",
        f"WITH q AS (SELECT * FROM {source}) SELECT * FROM q",
        f"SELECT * FROM view(SELECT * FROM {source})",
        f"SELECT * FROM t AS a JOIN {source} AS b ON 1 = 1",
        f"SELECT (SELECT count() FROM {source}) AS c, $$file('/etc/hostname')$$",
        f"EXPLAIN SELECT * FROM {source}",
        f"INSERT INTO t (s) SELECT * FROM {source}",
        f"CREATE TABLE z{rng.randrange(10**6)} ENGINE = Memory AS SELECT * FROM {source}",
        f"CREATE VIEW v{rng.randrange(10**6)} AS SELECT * FROM {source}",
    ]


def _respell(source: str, rng: random.Random) -> str:
    name, _, rest = source.partition("(")
    return _spell(name, rng) + rng.choice(["", " ", "\n"]) + "(" + rest if rest else source


@pytest.mark.parametrize("seed", range(6))
def test_hostile_sources_refused_in_every_spelling_and_place(handle: Handle, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "secret.txt"
    path.write_text("secret\n")
    allowed = []
    for template in HOSTILE_SOURCES:
        source = _respell(template.format(path=path), rng)
        for sql in _shapes(source, rng):
            for role in ("reader", "writer"):
                if not refused(handle, sql, role):
                    allowed.append((role, sql))
    assert not allowed


@pytest.mark.parametrize("seed", range(3))
def test_harmless_sources_allowed_in_the_same_places(handle: Handle, seed: int) -> None:
    rng = random.Random(seed)
    wrongly = []
    for source in HARMLESS_SOURCES:
        for sql in _shapes(source, rng)[:9]:  # the read-only shapes
            if refused(handle, sql, "reader"):
                wrongly.append(sql)
    assert not wrongly


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT file('/etc/hostname')",
        "SELECT lower(FILE('/etc/hostname'))",
        "SELECT catboostEvaluate('/tmp/model.bin', 1)",
        "SELECT addressToSymbol(toUInt64(1))",
        "SELECT 1 INTO OUTFILE '/tmp/fleetlog-out'",
        "SELECT 1 INTO OUTFILE '/tmp/fleetlog-out' COMPRESSION 'gzip'",
        "EXPLAIN SELECT 1 INTO OUTFILE '/tmp/fleetlog-out'",
        "SHOW TABLES INTO OUTFILE '/tmp/fleetlog-out'",
        "DESCRIBE t INTO OUTFILE '/tmp/fleetlog-out'",
        "INSERT INTO t FROM INFILE '/etc/hostname' FORMAT TSV",
        "INSERT INTO FUNCTION file('/tmp/fleetlog-in', 'TSV', 'x String') VALUES ('hi')",
        "INSERT INTO FUNCTION null('x String') VALUES ('hi')",
        "CREATE TABLE f1 (x String) ENGINE = File(TSV, '/tmp/fleetlog-f1')",
        "CREATE TABLE f2 (x String) ENGINE = URL('http://127.0.0.1:9/', CSV)",
        "CREATE TABLE f3 (x String) ENGINE = Executable('id', TSV)",
        "CREATE TABLE f4 (x String DEFAULT file('/etc/hostname')) ENGINE = Memory",
        "CREATE TABLE f6 (x String) ENGINE = MergeTree PARTITION BY file('/etc/hostname') ORDER BY x",
        "CREATE DATABASE d1 ENGINE = Filesystem('/')",
        "CREATE DATABASE d2 ENGINE = MySQL('127.0.0.1:9', 'd', 'u', 'p')",
        "CREATE DICTIONARY d3 (x UInt64) PRIMARY KEY x SOURCE(FILE(path '/etc/passwd' format 'TSV')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        "ATTACH TABLE a1 FROM '/tmp' (x Int8) ENGINE = MergeTree ORDER BY x",
        "BACKUP TABLE t TO File('/tmp/fleetlog-backup')",
        "RESTORE TABLE t FROM File('/tmp/fleetlog-backup')",
        "SYSTEM RELOAD CONFIG",
        "SYSTEM SHUTDOWN",
        "CREATE FUNCTION f5 AS x -> x + 1",
        "CREATE USER u1 IDENTIFIED BY 'x'",
        "GRANT ALL ON *.* TO default",
    ],
)
def test_statements_that_reach_outside_refused_for_the_writer_too(handle: Handle, sql: str) -> None:
    assert refused(handle, sql, "writer")
    assert refused(handle, sql, "reader")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t SELECT number, '' FROM numbers(3)",
        "CREATE TABLE IF NOT EXISTS k1 (x Int8 CODEC(Delta, ZSTD(1))) ENGINE = ReplacingMergeTree ORDER BY x "
        "TTL toDateTime(x) + INTERVAL 1 DAY SETTINGS non_replicated_deduplication_window = 100",
        "CREATE TABLE IF NOT EXISTS k2 (x Int8) ENGINE = AggregatingMergeTree ORDER BY x",
        "CREATE TABLE IF NOT EXISTS k4 (ts DateTime, x Int8) ENGINE = ReplacingMergeTree(ts) PARTITION BY toYYYYMM(ts) "
        "ORDER BY (x, ts) TTL ts + INTERVAL 1 DAY",
        "CREATE TABLE IF NOT EXISTS k5 (x Int8) ORDER BY x PARTITION BY x % 2",
        "CREATE DATABASE IF NOT EXISTS db1 ENGINE = Atomic",
        "CREATE TABLE IF NOT EXISTS k3 (x Int8) ENGINE = Memory",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv1 TO t AS SELECT x, s FROM t",
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS y Int8",
        "OPTIMIZE TABLE t FINAL",
        "TRUNCATE TABLE IF EXISTS k3",
        "DROP TABLE IF EXISTS k3",
    ],
)
def test_what_sinks_and_migrations_do_stays_allowed_for_the_writer(handle: Handle, sql: str) -> None:
    assert not refused(handle, sql, "writer")
    assert refused(handle, sql, "reader")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0",
        "SELECT 1 SETTINGS max_memory_usage=0",
        "SELECT 1 SETTINGS max_threads = 1, `max_memory_usage` = 0",
        "SET max_execution_time = 100000",
        "SET readonly = 0",
        "INSERT INTO t SETTINGS max_memory_usage = 0 SELECT 1, ''",
    ],
)
def test_the_writer_cannot_lift_the_limits_in_sql(handle: Handle, sql: str) -> None:
    """The reader's handles are readonly = 1: the engine refuses these (tests/security/test_store_auth.py)."""
    assert refused(handle, sql, "writer")


def test_guarded_setting_names_in_literals_or_comments_are_harmless(handle: Handle) -> None:
    assert not refused(handle, "SELECT 'max_execution_time' /* readonly */", "writer")
    assert not refused(handle, "SELECT name FROM system.settings WHERE name = 'readonly'", "reader")
    # what clickhouse-connect asks on connect, and a filter on the same column beside a harmless setting
    assert not refused(handle, "SELECT name, value, readonly FROM system.settings LIMIT 10000", "reader")
    assert not refused(handle, "SELECT name FROM system.settings WHERE readonly = 1 SETTINGS max_threads = 1", "writer")


def test_insert_heads_checked_per_role(handle: Handle) -> None:
    head = b"INSERT INTO t (x, s) SETTINGS insert_deduplication_token = 'p:0:1-2'"
    check_insert(handle, head, "Native", "writer")
    with pytest.raises(ClickHouseError):
        check_insert(handle, head, "Native", "reader")
    with pytest.raises(ClickHouseError):
        check_insert(handle, b"INSERT INTO FUNCTION file('/tmp/fleetlog-x', 'TSV', 'x String')", "TSV", "writer")


def test_bound_parameters_are_parsed_with_their_values(handle: Handle) -> None:
    assert not refused(handle, "SELECT * FROM {tab:Identifier} WHERE x = {v:Int64}", "reader", {"tab": "t", "v": "1"})
    # A parameter cannot become a function: bound as an identifier it names a table, which does not exist.
    assert not refused(handle, "SELECT * FROM {tab:Identifier}", "reader", {"tab": "file"})


def test_refused_statements_touch_nothing(handle: Handle, tmp_path: Path) -> None:
    """The statements are refused before the engine runs them: no file is written or created."""
    target = tmp_path / "written.tsv"
    for sql in (
        f"INSERT INTO FUNCTION file('{target}', 'TSV', 'x String') VALUES ('hi')",
        f"SELECT 1 INTO OUTFILE '{target}'",
        f"CREATE TABLE w1 (x String) ENGINE = File(TSV, '{target}')",
    ):
        assert refused(handle, sql, "writer")
    assert not target.exists()
