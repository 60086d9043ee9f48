"""Status files: how a running fleetlog process tells ``fleetlog status`` (and tests) that it is up.

Each long-running process -- sink, processor, store server, dashboard -- keeps one JSON
file, ``$FLEETLOG_HOME/state/<kind>-<pid>.json``, written whole and atomically (a reader
never sees half a file) and removed when the process leaves, so a file that is there
names a live process.  This is the one writer of them; stdlib only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from fleetlog._private import private_dir

__all__ = ["StatusFile"]


class StatusFile:
    """``<state_dir>/<kind>-<pid>.json``: :meth:`write` replaces it whole, :meth:`remove` (or leaving
    the ``with`` block) deletes it.

    ``home``: the folder under which ``state_dir`` lies; it and every folder down to the file
    are kept private (0700), because status names hosts, ports and stores.
    """

    def __init__(self, state_dir: Path, kind: str, *, home: Path | None = None, pid: int | None = None) -> None:
        self.path = Path(state_dir) / f"{kind}-{os.getpid() if pid is None else pid}.json"
        self._home = home

    def write(self, data: Mapping[str, Any]) -> None:
        """Replace the file with ``data`` as JSON (values JSON cannot say are written as ``str``)."""
        private_dir(self.path.parent, root=self._home if self._home is not None else self.path.parent.parent)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(data), default=str))
        tmp.replace(self.path)

    def remove(self) -> None:
        """Say the process is gone: delete the file (no error when it was never written)."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StatusFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
