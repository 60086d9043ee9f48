"""chDB connection handles for the HTTP endpoint: a pool for plain requests, one per session.

Why the endpoint opens handles of its own instead of using the owner's ``ChdbClient``:
that client serialises every call on its single handle (a per-client lock), so remote
queries would queue behind the sink's inserts, and its ``SET``/``USE`` state is the
owner's business. chDB lets one process open any number of handles on its one store
path; each handle is an engine session that runs one statement at a time and releases
the GIL while it does. So every request gets a handle to itself, and the only locks
are the pool's bookkeeping and a session's "one request at a time" rule.

A handle remembers the settings and database it was last given, so a request whose
URL settings match the previous one's (the normal case: a client sends the same ones
every time) costs no extra statement.

Roles: the endpoint's two users never share a handle. Every handle gets the per-query
:class:`QueryLimits` when it opens; a reader's handle then gets ``readonly = 1`` last, after
which the engine itself refuses INSERT, DDL and any change of a setting (``readonly``
and the limits included, also in a query's ``SETTINGS`` clause). A writer may change
settings, but not raise the limits through URL arguments. Sessions are keyed by
(role, session id), so a reader naming a writer's session gets a session of its own.

Inserts spool the request body to a private file and run ``INSERT ... FROM INFILE``:
chDB's streaming insert (``send_insert``) reports success for blocks the table then
refuses (too many parts, too many partitions in one block), silently dropping them,
while a statement run whole raises the error as clickhouse-server would.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import chdb

from fleetlog.config import StoreConfig
from fleetlog.store.endpoint._protocol import ClickHouseError
from fleetlog.store.endpoint._sqlscan import with_infile

DEFAULT_DATABASE: Final = "default"
Role = Literal["reader", "writer"]
_SETTING_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Result names chdb's Python wrapper turns into Python objects instead of bytes.
_WRAPPER_FORMATS: Final = frozenset({"dataframe", "arrowtable", "datastore"})


@contextmanager
def engine_errors() -> Iterator[None]:
    """Report chDB's RuntimeError/ChdbError as the ClickHouse error it carries."""
    try:
        yield
    except ClickHouseError:
        raise
    except Exception as exc:
        raise ClickHouseError.from_engine(exc) from None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class QueryLimits:
    """Per-query bounds on every handle (``FLEETLOG_STORE_MAX_QUERY_SECONDS`` / ``..._MEMORY_BYTES``).

    One query must not hold a core or the sink's memory for good: the engine stops it
    with TIMEOUT_EXCEEDED (159) or MEMORY_LIMIT_EXCEEDED (241).
    """

    max_execution_seconds: float = StoreConfig().max_query_seconds  # declared once, in fleetlog.config
    max_memory_bytes: int = StoreConfig().max_query_memory_bytes

    def settings(self) -> dict[str, str]:
        seconds = self.max_execution_seconds
        return {
            "max_execution_time": str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds)),
            "max_memory_usage": str(int(self.max_memory_bytes)),
        }


@dataclass(frozen=True)
class InsertSummary:
    """What an INSERT wrote, for X-ClickHouse-Summary."""

    rows_written: int
    bytes_written: int
    elapsed: float


@dataclass
class Handle:
    """One chDB connection (an engine session) and the state the endpoint gave it."""

    conn: Any
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = DEFAULT_DATABASE
    discard: bool = False
    spool_dir: str | None = None
    role: Role = "reader"
    baseline: dict[str, str] = field(default_factory=dict)  # what the handle was opened with: the limits

    def classify(self, sql: bytes) -> tuple[str, int]:
        """chdb-core's own statement analysis: (READ_ONLY|MUTATING|...|CONTROL|UNKNOWN, count)."""
        with engine_errors():
            report = self.conn._conn.classify_query(sql)
        kind = report["query_class"]
        return getattr(kind, "name", str(kind)), int(report["statement_count"])

    def prepare(self, settings: Mapping[str, str], database: str | None) -> None:
        """Bring the session's settings and current database to what the request asks for."""
        self._apply_settings(settings)
        if database is not None and database != self.database:
            self.database = None
            with engine_errors():
                self.conn.query("USE {db:Identifier}", "TabSeparated", params={"db": database})
            self.database = database

    def _apply_settings(self, wanted: Mapping[str, str]) -> None:
        """SET what differs from the last request's settings; put the ones it dropped back.

        A reader's handle is ``readonly``: every SET that succeeded on it changed nothing (the
        engine accepts only a value equal to the current one), so there is never anything to
        put back, and putting back would be refused.
        """
        changes = [f"{k} = {_quote(v)}" for k, v in wanted.items() if self.settings.get(k) != v]
        if self.role == "writer":
            changes += [self._restore(k) for k in self.settings if k not in wanted]
        if not changes:
            return
        for name in wanted:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError(115, f"Unknown setting {name!r}")
        if self.role == "writer":
            _check_limits(wanted, self.baseline)
        try:
            with engine_errors():
                self.conn.query("SET " + ", ".join(changes), "TabSeparated")
        except ClickHouseError:
            if self.role == "writer":
                self._reset(set(wanted) | set(self.settings))
            raise
        self.settings = {**self.settings, **wanted} if self.role == "reader" else dict(wanted)

    def _restore(self, name: str) -> str:
        """The assignment that puts ``name`` back to what the handle was opened with."""
        return f"{name} = {_quote(self.baseline[name])}" if name in self.baseline else f"{name} = DEFAULT"

    def _reset(self, names: Iterable[str]) -> None:
        """After a failed SET nothing is known; put every touched setting back (the limits to the limits)."""
        for name in names:
            with suppress(Exception):  # an unknown name was never applied
                self.conn.query(f"SET {self._restore(name)}", "TabSeparated")
        self.settings = {}

    def query(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> Any:
        _check_format(fmt)
        with engine_errors():
            return self.conn.query(sql, fmt, params=dict(params))

    def stream(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> Any:
        _check_format(fmt)
        with engine_errors():
            return self.conn.send_query(sql, fmt, params=dict(params))

    def insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> InsertSummary:
        """Run ``INSERT ... FORMAT fmt`` over the data, spooled to disk rather than held in memory."""
        _check_format(fmt)
        if self.spool_dir is None:
            return self._stream_insert(statement, fmt, chunks)
        fd, path = tempfile.mkstemp(dir=self.spool_dir, suffix=".body")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                empty = out.tell() == 0
            if empty:  # nothing to lose, and FROM INFILE refuses an empty file
                return self._stream_insert(statement, fmt, ())
            sql = with_infile(statement.encode(), path) + b" FORMAT " + fmt.encode()
            with engine_errors():
                result = self.conn.query(sql, "TabSeparated")
            return InsertSummary(result.rows_written(), result.bytes_written(), result.elapsed())
        finally:
            with suppress(OSError):
                os.unlink(path)

    def _stream_insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> InsertSummary:
        with engine_errors():
            inserter = self.conn.send_insert(statement, fmt)
        try:
            for chunk in chunks:  # reading the request body may fail too: not an engine error
                with engine_errors():
                    inserter.append(chunk)
            with engine_errors():
                result = inserter.finish()
            return InsertSummary(result.rows_written, result.bytes_written, result.elapsed)
        except BaseException:
            try:
                inserter.cancel()
            except Exception:
                self.discard = True
            raise

    def close(self) -> None:
        with suppress(Exception):
            self.conn.close()


def _check_limits(wanted: Mapping[str, str], limits: Mapping[str, str]) -> None:
    """A writer's URL settings may lower the per-query limits, never raise or lift them (0 = no limit)."""
    for name, limit in limits.items():
        if name not in wanted:
            continue
        try:
            value = float(wanted[name])
        except ValueError:
            raise ClickHouseError(452, f"Setting {name} must be a number, got {wanted[name][:64]!r}") from None
        if not 0 < value <= float(limit):
            raise ClickHouseError(
                452, f"Setting {name} may not exceed the endpoint's per-query limit {limit} (nor be 0, no limit)"
            )


def _check_format(fmt: str) -> None:
    if fmt.lower() in _WRAPPER_FORMATS:
        raise ClickHouseError(73, f"Unknown format {fmt}")


# How long a request waits for its session while another request of it finishes.
SESSION_WAIT_SECONDS = 2.0


@dataclass
class _Session:
    handle: Handle
    timeout: float
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class HandlePool:
    """Handles for sessionless requests, plus one per live HTTP ``session_id``.

    Sessions follow clickhouse-server: state (SET, USE, temporary tables) persists for
    ``session_timeout`` seconds of idleness, and a session serves one request at a time.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        limits: QueryLimits | None = None,
        max_idle: int = 8,
        max_sessions: int = 1000,
    ) -> None:
        self._connection_string = connection_string
        self._limits = limits or QueryLimits()
        self._max_idle = max_idle
        self._max_sessions = max_sessions
        self._idle: dict[Role, list[Handle]] = {"reader": [], "writer": []}
        self._sessions: dict[tuple[Role, str], _Session] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._spool_dir = tempfile.mkdtemp(prefix="fleetlog-endpoint-")  # private (0700): insert bodies

    def open(self, role: Role = "reader") -> Handle:
        """A new handle for ``role``: the limits first, then (reader) ``readonly = 1``, which locks them."""
        baseline = self._limits.settings()
        with engine_errors():
            conn = chdb.connect(self._connection_string)
            try:
                conn.query("SET " + ", ".join(f"{k} = {v}" for k, v in baseline.items()), "TabSeparated")
                if role == "reader":
                    conn.query("SET readonly = 1", "TabSeparated")
            except BaseException:
                with suppress(Exception):
                    conn.close()
                raise
        return Handle(conn, spool_dir=self._spool_dir, role=role, baseline=baseline)

    @contextmanager
    def checkout(
        self, session_id: str | None = None, *, role: Role = "reader", timeout: float = 60.0, check: bool = False
    ) -> Iterator[Handle]:
        """A handle of ``role`` for one request; a session's own handle when ``session_id`` is given."""
        if role not in self._idle:
            raise ValueError(f"role must be 'reader' or 'writer', not {role!r}")
        if session_id:
            with self._session((role, session_id), timeout, check) as handle:
                yield handle
            return
        with self._lock:
            idle = self._idle[role]
            handle = idle.pop() if idle else None
        handle = handle or self.open(role)
        try:
            yield handle
        finally:
            self._give_back(handle)

    def _give_back(self, handle: Handle) -> None:
        with self._lock:
            idle = self._idle[handle.role]
            if not (handle.discard or self._closed) and len(idle) < self._max_idle:
                idle.append(handle)
                return
        handle.close()

    @contextmanager
    def _session(self, key: tuple[Role, str], timeout: float, check: bool) -> Iterator[Handle]:
        session = self._acquire_session(key, timeout, check)
        try:
            yield session.handle
        finally:
            session.last_used, session.timeout = time.monotonic(), timeout
            with self._lock:
                if session.handle.discard or self._closed:
                    self._sessions.pop(key, None)
                    session.handle.close()
                session.lock.release()

    def _acquire_session(self, key: tuple[Role, str], timeout: float, check: bool) -> _Session:
        """The session, locked for this request.

        A client's next request can arrive while the handler of its previous one still holds the
        session to finish writing the reply; that is not concurrent use, so wait a moment for it
        (outside the pool's lock) before answering SESSION_IS_LOCKED.
        """
        while True:
            with self._lock:
                self._expire_sessions()
                session = self._sessions.get(key)
                if session is None:
                    session = self._new_session(key, timeout, check)
                if session.lock.acquire(blocking=False):
                    return session
            if not session.lock.acquire(timeout=SESSION_WAIT_SECONDS):
                raise ClickHouseError(373, f"Session {key[1]} is locked by a concurrent client")
            with self._lock:
                if self._sessions.get(key) is session:  # not expired or discarded meanwhile
                    return session
            session.lock.release()

    def _new_session(self, key: tuple[Role, str], timeout: float, check: bool) -> _Session:
        if check:
            raise ClickHouseError(372, f"Session {key[1]} not found")
        if len(self._sessions) >= self._max_sessions:
            raise ClickHouseError(202, f"Too many open HTTP sessions ({self._max_sessions})")
        session = _Session(self.open(key[0]), timeout)
        self._sessions[key] = session
        return session

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if now - session.last_used > session.timeout and session.lock.acquire(blocking=False):
                del self._sessions[key]
                session.handle.close()
                session.lock.release()

    def close(self) -> None:
        """Close idle handles and sessions; handles in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle = [handle for handles in self._idle.values() for handle in handles]
            self._idle = {"reader": [], "writer": []}
            for key, session in list(self._sessions.items()):
                if session.lock.acquire(blocking=False):
                    del self._sessions[key]
                    idle.append(session.handle)
                    session.lock.release()
        for handle in idle:
            handle.close()
        shutil.rmtree(self._spool_dir, ignore_errors=True)
