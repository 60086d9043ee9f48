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
from typing import Any, Final

import chdb
from fleetlog.sinks._http_protocol import ClickHouseError
from fleetlog.sinks._sqlscan import with_infile

DEFAULT_DATABASE: Final = "default"
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
        changes = [f"{k} = {_quote(v)}" for k, v in wanted.items() if self.settings.get(k) != v]
        changes += [f"{k} = DEFAULT" for k in self.settings if k not in wanted]
        if not changes:
            return
        for name in wanted:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError(115, f"Unknown setting {name!r}")
        try:
            with engine_errors():
                self.conn.query("SET " + ", ".join(changes), "TabSeparated")
        except ClickHouseError:
            self._reset(set(wanted) | set(self.settings))
            raise
        self.settings = dict(wanted)

    def _reset(self, names: Iterable[str]) -> None:
        """After a failed SET nothing is known; put every touched setting back to default."""
        for name in names:
            with suppress(Exception):  # an unknown name was never applied
                self.conn.query(f"SET {name} = DEFAULT", "TabSeparated")
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

    def __init__(self, connection_string: str, *, max_idle: int = 8, max_sessions: int = 1000) -> None:
        self._connection_string = connection_string
        self._max_idle = max_idle
        self._max_sessions = max_sessions
        self._idle: list[Handle] = []
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._spool_dir = tempfile.mkdtemp(prefix="fleetlog-endpoint-")  # private (0700): insert bodies

    def open(self) -> Handle:
        with engine_errors():
            return Handle(chdb.connect(self._connection_string), spool_dir=self._spool_dir)

    @contextmanager
    def checkout(
        self, session_id: str | None = None, *, timeout: float = 60.0, check: bool = False
    ) -> Iterator[Handle]:
        """A handle for one request; a session's own handle when ``session_id`` is given."""
        if session_id:
            with self._session(session_id, timeout, check) as handle:
                yield handle
            return
        with self._lock:
            handle = self._idle.pop() if self._idle else None
        handle = handle or self.open()
        try:
            yield handle
        finally:
            self._give_back(handle)

    def _give_back(self, handle: Handle) -> None:
        with self._lock:
            if not (handle.discard or self._closed) and len(self._idle) < self._max_idle:
                self._idle.append(handle)
                return
        handle.close()

    @contextmanager
    def _session(self, session_id: str, timeout: float, check: bool) -> Iterator[Handle]:
        session = self._acquire_session(session_id, timeout, check)
        try:
            yield session.handle
        finally:
            session.last_used, session.timeout = time.monotonic(), timeout
            with self._lock:
                if session.handle.discard or self._closed:
                    self._sessions.pop(session_id, None)
                    session.handle.close()
                session.lock.release()

    def _acquire_session(self, session_id: str, timeout: float, check: bool) -> _Session:
        """The session, locked for this request.

        A client's next request can arrive while the handler of its previous one still holds the
        session to finish writing the reply; that is not concurrent use, so wait a moment for it
        (outside the pool's lock) before answering SESSION_IS_LOCKED.
        """
        while True:
            with self._lock:
                self._expire_sessions()
                session = self._sessions.get(session_id)
                if session is None:
                    session = self._new_session(session_id, timeout, check)
                if session.lock.acquire(blocking=False):
                    return session
            if not session.lock.acquire(timeout=SESSION_WAIT_SECONDS):
                raise ClickHouseError(373, f"Session {session_id} is locked by a concurrent client")
            with self._lock:
                if self._sessions.get(session_id) is session:  # not expired or discarded meanwhile
                    return session
            session.lock.release()

    def _new_session(self, session_id: str, timeout: float, check: bool) -> _Session:
        if check:
            raise ClickHouseError(372, f"Session {session_id} not found")
        if len(self._sessions) >= self._max_sessions:
            raise ClickHouseError(202, f"Too many open HTTP sessions ({self._max_sessions})")
        session = _Session(self.open(), timeout)
        self._sessions[session_id] = session
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
            idle, self._idle = self._idle, []
            for key, session in list(self._sessions.items()):
                if session.lock.acquire(blocking=False):
                    del self._sessions[key]
                    idle.append(session.handle)
                    session.lock.release()
        for handle in idle:
            handle.close()
        shutil.rmtree(self._spool_dir, ignore_errors=True)
