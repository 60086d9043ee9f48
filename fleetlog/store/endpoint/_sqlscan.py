"""Just enough SQL lexing for the HTTP endpoint to route a request without a parser.

Two questions need an answer before chDB sees the text, and neither can be asked of
the engine itself:

* Where does an ``INSERT ... FORMAT x`` (or ``... VALUES``) statement end and its data
  begin? The data can be gigabytes of binary Native bytes that must be streamed into
  ``Connection.send_insert`` rather than pasted into a query string.
* Which output format does a query name in its own ``FORMAT`` clause? The response must
  say so in ``X-ClickHouse-Format`` and pick a Content-Type.

The lexer skips string literals, quoted identifiers and comments, and tracks bracket
depth, so ``FORMAT`` inside a literal, a column list or a function call is never taken
for the clause. Text is scanned as latin-1 so that character offsets equal byte offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

_TOKEN: Final = re.compile(
    r"""(?P<space>\s+)
      |(?P<comment>--[^\n]*\n|\#[^\n]*\n|/\*.*?\*/)
      |(?P<quoted>'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*")
      |(?P<partial>--|\#|/\*|['`"])
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<other>.)""",
    re.S | re.X,
)

NEED_MORE: Final = "need-more"
"""Returned by :func:`split_insert` while the statement head is not complete yet."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int
    depth: int


@dataclass(frozen=True)
class InsertHead:
    """An INSERT whose data follows the statement: ``statement`` goes to send_insert."""

    statement: bytes
    fmt: str
    data_offset: int


def tokens(text: str) -> Iterator[Token]:
    """Significant tokens (no spaces or comments) with their bracket depth.

    An unterminated literal or comment yields a ``partial`` token and stops, so that
    a caller scanning a prefix of the request knows it must read more.
    """
    depth = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        value = match.group()
        if kind == "other" and value in ")]":
            depth = max(depth - 1, 0)
        yield Token(kind, value, match.start(), match.end(), depth)
        if kind == "partial":
            return
        if kind == "other" and value in "([":
            depth += 1


def _word(token: Token | None, *words: str) -> bool:
    return token is not None and token.kind == "word" and token.text.upper() in words


def _skip_target(toks: Iterator[Token]) -> Token | None:
    """Consume ``INTO [TABLE] name[.name]`` or ``INTO FUNCTION f(...)``; return the next token.

    The target name is skipped explicitly so that a table called ``format`` or ``values``
    is not mistaken for the clause that follows it.
    """
    tok = next(toks, None)
    if not _word(tok, "INTO"):
        return tok
    tok = next(toks, None)
    if _word(tok, "TABLE", "FUNCTION"):
        tok = next(toks, None)
    tok = next(toks, None)  # past the table or function name
    if tok is not None and tok.text == ".":
        next(toks, None)
        tok = next(toks, None)
    return tok


def _data_start(text: str, pos: int) -> int:
    """ClickHouse's rule: data starts after the first newline if only blanks precede it."""
    while pos < len(text) and text[pos] in " \t\f":
        pos += 1
    if text.startswith("\r\n", pos):
        return pos + 2
    if text.startswith("\n", pos):
        return pos + 1
    return pos


def split_insert(buf: bytes, at_eof: bool) -> InsertHead | str | None:
    """Split ``INSERT ... FORMAT f <data>`` / ``INSERT ... VALUES <data>`` at the data.

    Returns :data:`NEED_MORE` when ``buf`` ends before the answer is known, ``None`` for
    any statement that carries no inline data (``SELECT``, ``INSERT ... SELECT``, DDL).
    """
    text = buf.decode("latin-1")
    toks = tokens(text)
    first = next(toks, None)
    if first is None or first.kind == "partial" or (first.end == len(text) and not at_eof):
        return None if at_eof else NEED_MORE
    if not _word(first, "INSERT"):
        return None
    tok = _skip_target(toks)
    while tok is not None and tok.kind != "partial":
        if tok.depth == 0 and _word(tok, "SELECT", "WITH", "FROM"):
            return None
        if tok.depth == 0 and _word(tok, "VALUES"):
            return InsertHead(buf[: tok.start].rstrip(), "Values", tok.end)
        if tok.depth == 0 and _word(tok, "FORMAT"):
            return _format_clause(buf, text, tok, next(toks, None), at_eof)
        tok = next(toks, None)
    return None if at_eof else NEED_MORE


def read_head(head: bytes, body: Iterator[bytes], limit: int) -> tuple[InsertHead | None, bytes]:
    """Pull body chunks until the statement is known to be an INSERT with data, or not.

    ``split_insert`` lexes the whole buffer, so it runs again only once the buffer has
    doubled (or the body ended): a head sent in tiny chunks costs O(n), not O(n^2).
    """
    parts, size, scanned, at_eof = [head], len(head), 0, False
    while True:
        if at_eof or size >= 2 * scanned or size > limit:
            head, scanned = b"".join(parts), size
            parts = [head]
            split = split_insert(head, at_eof)
            if split is not NEED_MORE:
                return (split if isinstance(split, InsertHead) else None), head
            if size > limit:
                return None, head
        chunk = next(body, None)
        if chunk is None:
            at_eof = True
        else:
            parts.append(chunk)
            size += len(chunk)


def _format_clause(buf: bytes, text: str, keyword: Token, name: Token | None, at_eof: bool) -> InsertHead | str | None:
    if name is None or name.kind == "partial":
        return None if at_eof else NEED_MORE
    if name.kind != "word":
        return None
    start = _data_start(text, name.end)
    if not at_eof and (name.end == len(text) or start == len(text)):
        return NEED_MORE  # the name or the newline after it may continue in the next chunk
    return InsertHead(buf[: keyword.start].rstrip(), name.text, start)


def output_format(sql: bytes, known: dict[str, str]) -> str | None:
    """The format a query names in its top-level ``FORMAT`` clause, canonically spelt.

    ``known`` maps lower-cased output format names to the engine's spelling; a word after
    ``FORMAT`` that is not a format (``SELECT format FROM t``) is not a clause.
    """
    if b"format" not in sql.lower():
        return None
    found = None
    previous: Token | None = None
    for tok in tokens(sql.decode("latin-1")):
        if previous is not None and tok.kind == "word" and tok.text.lower() in known:
            found = known[tok.text.lower()]
        previous = tok if tok.depth == 0 and _word(tok, "FORMAT") else None
    return found


def with_infile(statement: bytes, path: str) -> bytes:
    """``INSERT INTO t [(cols)] FROM INFILE 'path' [SETTINGS ...]``: the statement's data read from a file.

    ``statement`` is an :class:`InsertHead`'s (everything before ``FORMAT``); ``path`` is the
    endpoint's own spool file, never a client's.
    """
    text = statement.decode("latin-1")
    toks = tokens(text)
    next(toks, None)  # INSERT
    tok = _skip_target(toks)
    while tok is not None and not (tok.depth == 0 and _word(tok, "SETTINGS")):
        tok = next(toks, None)
    at = len(text) if tok is None else tok.start
    quoted = path.replace("\\", "\\\\").replace("'", "\\'")
    return f"{text[:at].rstrip()} FROM INFILE '{quoted}' {text[at:]}".rstrip().encode("latin-1")


def with_output_format(sql: bytes, known: dict[str, str], fmt: str) -> bytes:
    """``sql`` with its top-level ``FORMAT`` clause naming ``fmt`` instead (unchanged without one)."""
    found: Token | None = None
    previous: Token | None = None
    for tok in tokens(sql.decode("latin-1")):
        if previous is not None and tok.kind == "word" and tok.text.lower() in known:
            found = tok
        previous = tok if tok.depth == 0 and _word(tok, "FORMAT") else None
    if found is None:
        return sql
    return sql[: found.start] + fmt.encode() + sql[found.end :]


def file_clause(sql: bytes) -> str | None:
    """``INTO OUTFILE`` or ``FROM INFILE`` at top level: files of the *server* process.

    clickhouse-server refuses both over HTTP (they are client-side features); chDB would
    run them against its own filesystem, so the endpoint refuses them too.
    """
    lowered = sql.lower()
    if b"outfile" not in lowered and b"infile" not in lowered:
        return None
    previous: Token | None = None
    for tok in tokens(sql.decode("latin-1")):
        if _word(previous, "INTO") and _word(tok, "OUTFILE"):
            return "INTO OUTFILE"
        if _word(previous, "FROM") and _word(tok, "INFILE"):
            return "FROM INFILE"
        previous = tok
    return None
