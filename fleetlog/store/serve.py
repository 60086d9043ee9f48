"""``fleetlog store serve``: own an embedded store and serve ClickHouse's HTTP interface over it.

What a ClickHouse server is to a sink that writes over HTTP, without Kafka: the
process opens the chDB directory (so it is that store's one owner) and answers on
``FLEETLOG_HTTP_HOST:FLEETLOG_HTTP_PORT``.  Sinks then run with
``FLEETLOG_CLICKHOUSE_URL=http://127.0.0.1:8123/fleetlog`` -- several at once, in one
consumer group -- and readers use the same address.  It is also how to read a
store while no sink is running.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from fleetlog._private import private_dir
from fleetlog._status import StatusFile
from fleetlog.config import Settings
from fleetlog.store.client import connect
from fleetlog.store.endpoint import HttpEndpoint
from fleetlog.store.recover import forget_uncommitted_inserts

__all__ = ["serve_store", "store_path"]

log = logging.getLogger("fleetlog.store")


def store_path(settings: Settings) -> Path:
    """The chDB directory to serve: FLEETLOG_CLICKHOUSE_URL's when it is chdb://, else $FLEETLOG_HOME/store."""
    if settings.store.is_embedded:
        return Path(urlsplit(settings.store.url).path)
    return settings.home / "store"


def serve_store(settings: Settings, *, path: Path | None = None, stop: threading.Event | None = None) -> None:
    """Serve the store until SIGINT/SIGTERM (or ``stop``); the state file says where.

    Readers and writers log in with this home's credentials (``fleetlog store credentials``).
    """
    path = private_dir(Path(path or store_path(settings)).resolve(), root=settings.home.resolve())
    forget_uncommitted_inserts(path)  # see fleetlog.store.recover: a killed owner's last insert
    store = connect(f"chdb://{path}")
    endpoint = HttpEndpoint.for_settings(store, settings)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    state = StatusFile(settings.state_dir, "store", home=settings.home)
    endpoint.start()
    try:
        state.write({"pid": os.getpid(), "http": endpoint.url, "path": str(path), "since": time.time()})
        log.info("serving the store %s at %s", path, endpoint.url)
        stop.wait()
    finally:
        state.remove()
        endpoint.stop()
        store.close()
