"""A token whose insert a crash left uncommitted is forgotten before the store opens again.

The crash is reproduced exactly: the engine's deduplication log gets the line a killed insert leaves
(its block number above every part), and the replay with the same token is shown to be dropped
without the clean-up and stored with it. chDB allows one store path per process, so the engine runs in
child processes, each on a store of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fleetlog.store.recover import forget_uncommitted_inserts

TOKEN = "t.metrics:1:63-63"
SETUP = """
import chdb, glob, sys
c = chdb.connect(sys.argv[1])
c.query("CREATE TABLE t (ts DateTime64(3), x Int64) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY x "
        "SETTINGS non_replicated_deduplication_window = 100")
for token in ("a", "b"):
    c.query(f"INSERT INTO t SETTINGS insert_deduplication_token = '{token}' VALUES ('2026-12-04 17:29:12', 1)")
"""
TOKEN_LINE = """
import chdb, glob, sys
c = chdb.connect(sys.argv[1])
c.query("CREATE TABLE t (ts DateTime64(3), x Int64) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY x "
        "SETTINGS non_replicated_deduplication_window = 100")
c.query(f"INSERT INTO t SETTINGS insert_deduplication_token = '{sys.argv[2]}' VALUES ('2026-12-04 17:29:12', 1)")
print(open(glob.glob(sys.argv[1] + '/store/*/*/deduplication_logs/deduplication_log_1.txt')[0]).read().split()[-1])
"""
REPLAY = """
import chdb, sys
c = chdb.connect(sys.argv[1])
c.query(f"INSERT INTO t SETTINGS insert_deduplication_token = '{sys.argv[2]}' VALUES ('2026-12-04 17:29:12', 7)")
print(c.query("SELECT count() FROM t WHERE x = 7", "TSV").bytes().decode().strip())
"""


def _engine(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _crashed_store(tmp_path: Path, name: str) -> Path:
    """A store whose last insert (TOKEN) was logged but never committed, as a SIGKILL leaves it."""
    store = tmp_path / name
    _engine(SETUP, str(store))
    block_id = _engine(TOKEN_LINE, str(tmp_path / f"{name}-scratch"), TOKEN)  # the id the engine gives TOKEN
    (log,) = store.glob("store/*/*/deduplication_logs/deduplication_log_1.txt")
    with log.open("a") as out:
        out.write(f"1\t202612_3_3_0\t{block_id}\n")  # block 3: no part holds it
    return store


def test_without_the_clean_up_the_replay_of_a_killed_insert_is_dropped(tmp_path: Path) -> None:
    assert _engine(REPLAY, str(_crashed_store(tmp_path, "plain")), TOKEN) == "0"


def test_the_clean_up_forgets_only_the_uncommitted_token_and_the_replay_lands(tmp_path: Path) -> None:
    store = _crashed_store(tmp_path, "cleaned")
    (log,) = store.glob("store/*/*/deduplication_logs/deduplication_log_1.txt")
    before = log.read_text().splitlines()
    assert forget_uncommitted_inserts(store) == 1
    assert log.read_text().splitlines() == before[:-1]  # the committed inserts' tokens are kept
    assert forget_uncommitted_inserts(store) == 0
    assert _engine(REPLAY, str(store), TOKEN) == "1"
    assert _engine(REPLAY, str(store), "a") == "1"  # a committed token still deduplicates


def test_a_file_of_another_format_is_left_alone(tmp_path: Path) -> None:
    logs = tmp_path / "store" / "abc" / "uuid" / "deduplication_logs"
    logs.mkdir(parents=True)
    (logs / "deduplication_log_1.txt").write_text("something else entirely\n")
    assert forget_uncommitted_inserts(tmp_path / "store") == 0
    assert (logs / "deduplication_log_1.txt").read_text() == "something else entirely\n"
