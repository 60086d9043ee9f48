"""The one status-file writer: whole files, private folders, gone when the process leaves."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fleetlog._status import StatusFile


def test_write_replaces_the_file_whole_in_a_private_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    status = StatusFile(home / "state", "sink", home=home, pid=42)
    status.write({"pid": 42, "stats": {"rows": 1}, "path": Path("/x")})
    status.write({"pid": 42, "stats": {"rows": 2}})
    assert status.path == home / "state" / "sink-42.json"
    assert json.loads(status.path.read_text()) == {"pid": 42, "stats": {"rows": 2}}
    assert [p.name for p in status.path.parent.iterdir()] == ["sink-42.json"]  # no temporary file left
    for folder in (home, home / "state"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_leaving_the_block_removes_the_file_even_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), StatusFile(tmp_path / "state", "ui") as status:
        status.write({"pid": os.getpid()})
        assert status.path.name == f"ui-{os.getpid()}.json" and status.path.exists()
        raise RuntimeError("the server stopped")
    assert not status.path.exists()
    status.remove()  # twice is fine
