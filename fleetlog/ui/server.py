"""``fleetlog ui``: serve the dashboard with uvicorn until SIGINT/SIGTERM.

While serving it keeps ``$FLEETLOG_HOME/state/ui-<pid>.json`` (its address), which
is how ``fleetlog up`` knows it is ready and ``fleetlog status`` where it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from fleetlog._status import StatusFile
from fleetlog.config import Settings, is_loopback
from fleetlog.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["check_binding", "serve"]

log = logging.getLogger("fleetlog.ui")


def check_binding(settings: Settings) -> None:
    """Refuse to serve beyond loopback without a token: runs and their data would be open to the network."""
    if not settings.ui.token and not is_loopback(settings.ui.host):
        raise ConfigError(
            f"refusing to serve the dashboard on {settings.ui.host!r} without a token: "
            "set FLEETLOG_UI_TOKEN (or --token), or bind to 127.0.0.1"
        )


def serve(settings: Settings, *, log_level: str = "warning") -> None:
    """Serve until interrupted; the state file exists exactly while the socket accepts requests."""
    import uvicorn

    from fleetlog.ui.app import create_app

    check_binding(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.ui.host,
        port=settings.ui.port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
    )
    with StatusFile(settings.state_dir, "ui", home=settings.home) as state:
        asyncio.run(_serve(uvicorn.Server(config), settings, state))


async def _serve(server: uvicorn.Server, settings: Settings, state: StatusFile) -> None:
    task = asyncio.create_task(server.serve())  # uvicorn handles SIGINT/SIGTERM itself
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        state.write({"pid": os.getpid(), "url": settings.ui.url, "started": time.time()})
        log.info("dashboard at %s", settings.ui.url)
    await task
