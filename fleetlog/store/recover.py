"""Forget deduplication tokens of inserts a crash left uncommitted, before an embedded store opens.

A non-replicated MergeTree keeps the tokens of its last inserts in
``deduplication_logs/deduplication_log_N.txt`` (one line each: ``1<TAB>part<TAB>block_id``), and an insert
whose token is there is dropped as a duplicate. The engine appends that line *before* the insert's part
is renamed into place, so a process killed in between (the sink owns the embedded store, so a SIGKILL of
the sink is one) leaves a token whose rows never landed. The sink's replay then sends the same batch with
the same token, and the engine drops it: the batch is lost although it was never stored (seen in
``tests/integration/test_sink_crash.py``: the dead sink's last token named block 251, which no part ever
held; the restarted engine gave block 251 to the next insert, and the replay of the first was dropped).

Committed parts are directories named ``<partition>_<min block>_<max block>_<level>``, renamed into place
atomically, and merges keep the highest block number of what they merge. So while the store is closed,
a logged insert whose block number is above every part directory of its partition never committed: its
line is removed, and the replay inserts the batch. Every other line is kept as it is. Nothing is done
for a file this module cannot read as that format (a different engine version): it logs and leaves it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

__all__ = ["forget_uncommitted_inserts"]

log = logging.getLogger("fleetlog.store")

_PART = re.compile(r"^(?P<partition>.+)_(?P<min>\d+)_(?P<max>\d+)_(?P<level>\d+)(?:_\d+)?$")


def _highest_blocks(table_dir: Path) -> dict[str, int]:
    """Per partition, the highest block number any part directory (active or outdated) holds."""
    highest: dict[str, int] = {}
    for entry in table_dir.iterdir():
        match = _PART.match(entry.name)
        if entry.is_dir() and match and (entry / "checksums.txt").exists():
            partition, block = match["partition"], int(match["max"])
            highest[partition] = max(highest.get(partition, -1), block)
    return highest


def _clean_log(path: Path, highest: dict[str, int]) -> int:
    """Drop the lines of ``path`` whose part never committed; return how many."""
    lines = path.read_text().splitlines(keepends=True)
    kept, dropped = [], 0
    for line in lines:
        fields = line.rstrip("\n").split("\t")
        match = _PART.match(fields[1]) if len(fields) == 3 else None
        if match is None:
            log.warning("unexpected line in %s; leaving the file as it is", path)
            return 0
        if int(match["min"]) > highest.get(match["partition"], -1):
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        tmp = path.with_suffix(".fleetlog-tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return dropped


def forget_uncommitted_inserts(store_path: str | os.PathLike[str]) -> int:
    """Remove logged tokens of inserts that never committed, in every table of a closed chDB store.

    Call it only while no process has the store open (the sink calls it right before opening it).
    Returns how many tokens were forgotten.
    """
    forgotten = 0
    for logs in Path(store_path).glob("**/deduplication_logs"):
        highest = _highest_blocks(logs.parent)
        for path in sorted(logs.glob("deduplication_log_*.txt")):
            try:
                n = _clean_log(path, highest)
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("cannot check %s (%s); leaving it", path, exc)
                continue
            if n:
                log.warning("forgot %d deduplication token(s) of inserts a crash left uncommitted in %s", n, path)
            forgotten += n
    return forgotten
