"""``fleetlog sink``: the sink worker as a process, plus the embedded store's endpoint.

The process that opens a ``chdb://`` store is its only owner, so it also serves
ClickHouse's HTTP interface over it; every reader goes through that endpoint.
Against a ClickHouse server there is nothing to serve: readers go to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from urllib.parse import urlsplit

from fleetlog.sinks.clickhouse import ClickHouseSink
from fleetlog.sinks.worker import SinkWorker

from fleetlog._private import private_dir
from fleetlog._status import StatusFile
from fleetlog.config import Settings, mask_url
from fleetlog.credentials import store_url
from fleetlog.store.client import open_store, schema_options
from fleetlog.store.recover import forget_uncommitted_inserts
from fleetlog.topics import ensure_topics

__all__ = ["run_sink"]

log = logging.getLogger("fleetlog.sink")


def run_sink(
    settings: Settings, *, group_id: str = "fleetlog-sink", serve_http: bool = True, instance_id: str | None = None
) -> None:
    """Run until SIGINT/SIGTERM; flush pending batches before leaving.

    An embedded store is served with this home's credentials; a sink writing over HTTP to
    this home's own ``fleetlog store serve`` logs in as its writer without being told.
    """
    if settings.store.is_embedded:
        path = urlsplit(settings.store.url).path
        private_dir(path, root=settings.home)
        forget_uncommitted_inserts(path)  # a SIGKILLed owner's last insert must not be dropped on replay
    url = settings.store.url if settings.store.is_embedded else store_url(settings, "writer")
    store = open_store(url, options=schema_options(settings))
    log.info("sink writing to %s", mask_url(url))
    endpoint = None
    if serve_http and settings.store.is_embedded:
        from fleetlog.store.endpoint import HttpEndpoint

        endpoint = HttpEndpoint.for_settings(store, settings)
        endpoint.start()
        log.info("ClickHouse HTTP endpoint on %s", endpoint.url)
    try:
        worker = SinkWorker(
            settings,
            ClickHouseSink(settings, store),
            group_id=group_id,
            instance_id=instance_id or settings.sink.instance_id,
        )
        asyncio.run(_main(settings, worker, endpoint))
    finally:
        if endpoint is not None:
            endpoint.stop()
        store.close()


async def _main(settings: Settings, worker: SinkWorker, endpoint: object | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings)
    reporter = asyncio.create_task(_report(settings, worker, endpoint, stop))
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await reporter


async def _report(settings: Settings, worker: SinkWorker, endpoint: object | None, stop: asyncio.Event) -> None:
    """Write the worker's counters where ``fleetlog status`` reads them, every second."""
    with StatusFile(settings.state_dir, "sink", home=settings.home) as status:
        while not stop.is_set():
            status.write(
                {
                    "pid": os.getpid(),
                    "group": worker.group_id,
                    "http": getattr(endpoint, "url", None),
                    "store": mask_url(settings.store.url),
                    "updated": time.time(),
                    "stats": dict(worker.stats),
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
