"""Private files and folders under ``$FLEETLOG_HOME``: folders 0700, secret files 0600.

fleetlog runs on shared GPU nodes. ``$FLEETLOG_HOME`` holds the store, the spool (every
point a run logged while Kafka was away), the broker's data, artifacts and the store's
credentials, so other users of the node must not be able to list or read any of it. A
folder fleetlog creates is made 0700 from the start (``mkdir(mode=0o700)``; the umask can
only take bits away), and one that already exists with looser bits, say from an older
version, is tightened when fleetlog opens it. Secret files are created 0600 by
``os.open`` itself, so they are never readable by others, not even for an instant.

Only folders the current user owns are tightened: a shared parent such as ``/tmp`` is
never touched.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "tighten"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Drop any bit beyond ``mode`` from ``path`` if the current user owns it (never follows a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
        return
    if stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def private_dir(path: Path | str, *, root: Path | str | None = None) -> Path:
    """``mkdir -p path`` with 0700 for each folder it creates; tighten existing ones to 0700.

    Every folder from ``root`` (when ``path`` lies under it; usually ``$FLEETLOG_HOME``) down to
    ``path`` is tightened, so ``private_dir(home / "state", root=home)`` also closes a home
    folder an older version left at 0755. Returns ``path``.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)
    for folder in _chain(path, Path(root) if root is not None else None):
        tighten(folder, DIR_MODE)
    return path


def _chain(path: Path, root: Path | None) -> list[Path]:
    """``path`` and its parents up to ``root`` included; just ``path`` when it is not under ``root``."""
    if root is None:
        return [path]
    try:
        relative = path.absolute().relative_to(root.absolute())
    except ValueError:
        return [path]
    chain = [root]
    for part in relative.parts:
        chain.append(chain[-1] / part)
    return chain
