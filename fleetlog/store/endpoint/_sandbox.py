"""What a statement sent to the HTTP endpoint may touch, decided on the engine's own parse tree.

chDB runs in the sink's process with the sink's user: a table function such as ``file``,
``url`` or ``executable``, a ``File``/``URL`` table engine, ``INTO OUTFILE``, ``ATTACH ...
FROM 'path'`` or ``BACKUP`` would give anyone who can send SQL the sink's filesystem, network
and processes. clickhouse-server keeps those behind grants that chDB's embedded engine does
not enforce, so the endpoint asks the engine to parse each statement (``EXPLAIN AST``, which
runs nothing) and walks the tree it returns:

* the statement kind must be one the role may run (a reader: SELECT, SHOW, DESCRIBE, EXISTS,
  EXPLAIN, USE, SET; a writer also INSERT, CREATE TABLE/VIEW/DATABASE, ALTER, DROP, TRUNCATE,
  OPTIMIZE, RENAME); everything else (SYSTEM, ATTACH, BACKUP, CREATE FUNCTION/DICTIONARY/USER,
  GRANT, ...) is refused;
* no function anywhere in the tree may be a table function outside a short allowlist
  (``numbers``, ``values``, ``view``...) nor one of the scalar functions that read files or the
  process (``file``, ``catboostEvaluate``, introspection);
* a table or database engine must come from an allowlist (the MergeTree family, Memory, Null,
  the Log family, Buffer, Distributed; Atomic/Replicated/Memory databases);
* no file clause: ``INTO OUTFILE``/``FROM INFILE`` appear as a literal directly under the query.

Because the engine parses, nothing a client can write (comments, ``$$`` strings, odd case or
spacing, nesting, identifiers built with ``format()``) reads differently to the check than to
the engine; a function name cannot be computed at run time in ClickHouse SQL. The reader's
handles are in addition ``readonly = 1`` in the engine (see ``_engine``), which refuses writes
and setting changes whatever this module decides.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from fleetlog.store.endpoint._protocol import ClickHouseError
from fleetlog.store.endpoint._sqlscan import tokens

Role = Literal["reader", "writer"]

__all__ = ["Role", "check_insert", "check_query"]

ACCESS_DENIED: Final = 497

_READER_STATEMENTS: Final = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "SelectQuery",
        "ShowTables",
        "ShowColumns",
        "ShowCreateTableQuery",
        "ShowCreateDatabaseQuery",
        "ShowCreateViewQuery",
        "ShowProcesslistQuery",
        "ShowIndexes",
        "ShowSettingQuery",
        "ShowEngineQuery",
        "ShowFunctionsQuery",
        "DescribeQuery",
        "ExistsTableQuery",
        "ExistsDatabaseQuery",
        "ExistsViewQuery",
        "Explain",
        "UseQuery",
        "Set",
    }
)
_WRITER_STATEMENTS: Final = _READER_STATEMENTS | {
    "InsertQuery",
    "CreateQuery",
    "AlterQuery",
    "DropQuery",
    "TruncateQuery",
    "OptimizeQuery",
    "Rename",
    "CheckQuery",
}
# Statements whose file clause (INTO OUTFILE, FROM INFILE) is a literal among their direct children.
_FILE_CLAUSE_HOLDERS: Final = (_READER_STATEMENTS - {"SelectQuery", "Set", "UseQuery"}) | {"InsertQuery"}
_STATEMENTS: Final = {"reader": _READER_STATEMENTS, "writer": _WRITER_STATEMENTS}

# Table functions that read nothing outside the store: generators, inline data, other tables.
_SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "values",
        "null",
        "view",
        "viewifpermitted",
        "viewexplain",
        "merge",
        "format",
        "input",
        "generaterandom",
        "generate_series",
        "generateseries",
        "loop",
    }
)
# Scalar functions that read files or the process (introspection) rather than data.
_UNSAFE_SCALAR_FUNCTIONS: Final = frozenset(
    {"file", "catboostevaluate", "addresstoline", "addresstolinewithinlines", "addresstosymbol", "demangle"}
)
# Every table function the engine knows at the time of writing beyond the safe ones; the live list from
# system.table_functions is added on first use, so a function a newer engine brings is refused too.
_KNOWN_UNSAFE_TABLE_FUNCTIONS: Final = frozenset(
    {
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "hdfs",
        "hdfscluster",
        "azureblobstorage",
        "azureblobstoragecluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "executable",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "python",
        "dictionary",
        "iceberg",
        "deltalake",
        "hudi",
    }
)
_ENGINE: Final = re.compile(
    r"(Replicated|Shared)?(|Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing|Graphite|Coalescing)MergeTree"
    r"|Memory|Null|Log|TinyLog|StripeLog|Buffer|Distributed|Set|Join"
    r"|Atomic|Replicated|Ordinary"
)
_NODE: Final = re.compile(r"^( *)(\S+(?: definition)?)\s*(.*?)\s*(?:\(children \d+\))?$")
# Settings that bound what one query may cost or do. The reader's ``readonly = 1`` makes the engine refuse any
# change; the writer may change other settings in SQL (sinks send ``insert_deduplication_token``), not these.
# The engine's tree shows a SETTINGS clause or SET as a bare ``Set`` without names, so in a statement that has
# one, an assignment ``name =`` to any of these (the lexer skips literals and comments) is refused.
_GUARDED_SETTINGS: Final = frozenset(
    {
        "readonly",
        "max_execution_time",
        "max_execution_time_leaf",
        "max_memory_usage",
        "max_memory_usage_for_user",
        "allow_ddl",
        "allow_introspection_functions",
    }
)
_CACHE_SIZE: Final = 1024
_ENGINE_NAMES: Final = b"SELECT name FROM system.table_engines UNION ALL SELECT name FROM system.database_engines"
_CACHEABLE_BYTES: Final = 16 << 10  # longer statements are checked every time rather than kept


@dataclass(frozen=True)
class Node:
    """One line of ``EXPLAIN AST``: its depth, kind (``Function``, ``InsertQuery``...) and name."""

    depth: int
    kind: str
    name: str


def parse_ast(text: str) -> list[Node]:
    """The engine's indented tree as a flat list of nodes in document order."""
    nodes = []
    for line in text.splitlines():
        match = _NODE.match(line)
        if match and line.strip():
            spaces, kind, rest = match.groups()
            name = rest.split(" ", 1)[0] if rest and not rest.startswith("(") else ""
            nodes.append(Node(len(spaces), kind, name))
    return nodes


class _Allowed:
    """Statements already found harmless, so the common dashboard queries are parsed once."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._lock = threading.Lock()
        self.vocabulary: tuple[frozenset[str], frozenset[str]] | None = None

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            return False

    def add(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)


_allowed = _Allowed()


def _denied(message: str) -> ClickHouseError:
    return ClickHouseError(ACCESS_DENIED, f"{message}. The endpoint serves the store's own tables only")


def _vocabulary(handle: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(functions refused anywhere, the engine's table and database engine names), read from the engine once.

    Refused: every table function the engine has minus the safe ones, plus the unsafe scalar functions.
    """
    if _allowed.vocabulary is None:
        live = _names(handle, b"SELECT lower(name) FROM system.table_functions")
        unsafe = (live | _KNOWN_UNSAFE_TABLE_FUNCTIONS) - _SAFE_TABLE_FUNCTIONS
        engines = _names(handle, _ENGINE_NAMES)
        _allowed.vocabulary = unsafe | _UNSAFE_SCALAR_FUNCTIONS, engines
    return _allowed.vocabulary


def _names(handle: Any, sql: bytes) -> frozenset[str]:
    return frozenset(bytes(handle.query(sql, "TabSeparatedRaw", {}).bytes()).decode().split())


def _children(nodes: list[Node], index: int) -> Iterator[tuple[int, Node]]:
    """The direct children of ``nodes[index]``, with their positions."""
    depth = nodes[index].depth
    for position in range(index + 1, len(nodes)):
        node = nodes[position]
        if node.depth <= depth:
            return
        if node.depth == depth + 1:
            yield position, node


def check_tree(nodes: list[Node], role: Role, unsafe: frozenset[str], engines: frozenset[str]) -> None:
    """Raise ACCESS_DENIED unless every node of the statement is one ``role`` may use.

    ``unsafe``: lower-cased function names refused anywhere; ``engines``: the engine's table engine names,
    which in a storage definition name its engine (the other functions there are PARTITION BY, ORDER BY
    and TTL expressions, checked like any other).
    """
    if not nodes:
        raise ClickHouseError(62, "Empty query")
    root = nodes[0]
    if root.kind not in _STATEMENTS[role]:
        what = "read-only" if role == "reader" else "store"
        raise _denied(f"{root.kind} is not a {what} statement the {role} may run")
    engine_at: set[int] = set()
    for index, node in enumerate(nodes):
        if node.kind == "Dictionary definition":
            raise _denied("dictionaries read external sources; CREATE DICTIONARY is not allowed")
        if node.kind == "Storage definition":
            engine_at.update(i for i, child in _children(nodes, index) if child.name in engines)
        if node.kind in _FILE_CLAUSE_HOLDERS:
            for _, child in _children(nodes, index):
                if child.kind == "Literal":
                    raise _denied("INTO OUTFILE and FROM INFILE would use the server's filesystem")
                if child.kind == "Function" and node.kind == "InsertQuery":
                    raise _denied("INSERT INTO FUNCTION is not allowed")
        if node.kind in ("Function", "FunctionWithKeyValueArguments"):
            if index in engine_at:
                if not _ENGINE.fullmatch(node.name):
                    raise _denied(f"the {node.name} engine is not allowed")
            elif node.name.lower() in unsafe:
                raise _denied(f"function {node.name} reaches outside the store and is not allowed")


def _check_guarded_settings(sql: bytes) -> None:
    """Refuse a SET or SETTINGS list that assigns a guarded setting (literals and comments are skipped).

    A settings list is ``name = literal [, name = literal ...]`` after the word SET or SETTINGS;
    ``WHERE readonly = 1`` elsewhere in the statement is not one.
    """
    toks = list(tokens(sql.decode("latin-1")))
    for i, tok in enumerate(toks):
        if tok.kind != "word" or tok.text.upper() not in ("SET", "SETTINGS"):
            continue
        j = i + 1  # at a setting's name
        while j + 1 < len(toks) and toks[j + 1].text == "=":
            name = toks[j].text.strip('`"').lower()
            if name in _GUARDED_SETTINGS:
                raise _denied(f"{name} is set by the endpoint, not in SQL")
            j += 2  # at its value: a literal, perhaps negative
            j += 2 if j < len(toks) and toks[j].text == "-" else 1
            if j >= len(toks) or toks[j].text != ",":
                break
            j += 1


def check_query(handle: Any, sql: bytes, params: Mapping[str, str], role: Role) -> None:
    """Refuse ``sql`` unless ``role`` may run it (see the module docs); cheap for a statement seen before."""
    key = (role, sql, tuple(sorted(params.items())))
    cacheable = len(sql) + sum(map(len, params.values())) <= _CACHEABLE_BYTES
    if cacheable and key in _allowed:
        return
    unsafe, engines = _vocabulary(handle)
    result = handle.query(b"EXPLAIN AST " + sql, "TabSeparatedRaw", params)
    nodes = parse_ast(bytes(result.bytes()).decode("utf-8", "replace"))
    check_tree(nodes, role, unsafe, engines)
    if role == "writer" and any(node.kind == "Set" for node in nodes):
        _check_guarded_settings(sql)
    if cacheable:
        _allowed.add(key)


def check_insert(handle: Any, statement: bytes, fmt: str, role: Role) -> None:
    """Refuse an ``INSERT ... FORMAT fmt`` head (its data follows) unless ``role`` may run it."""
    check_query(handle, statement + b" FORMAT " + fmt.encode(), {}, role)
