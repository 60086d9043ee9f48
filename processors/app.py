"""The Faust application: configuration from ``Settings``, two tables, one agent, one timer.

Built by a function, never at import time, so importing this module touches no
event loop or producer.  Choices that matter (see README "Stream processors"):

- at-least-once processing (faust's ``exactly_once`` has open duplicate/crash
  bugs); exactness comes from the state's own offsets, see ``worker``;
- one agent with concurrency 1 (#606: concurrency > 1 can skip messages),
  reading batches with ``take_events``;
- in-memory stores rebuilt from compacted changelogs; no standby replicas,
  which the memory store could not use anyway;
- the consumer starts from the earliest offset, so a new group never skips data
  and recovery never races retention (#651).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import RunEngine
from fleetlog.processors.pipeline import Pipeline
from fleetlog.processors.tables import RoutedTable
from fleetlog.processors.worker import ProcessorWorker

from fleetlog.config import Settings

__all__ = ["app_id", "build_app", "faust_settings"]

log = logging.getLogger("fleetlog.processor")

_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
_TOPIC_CONFIG = {"max.message.bytes": str(10 << 20)}


def app_id(settings: Settings) -> str:
    """Faust app id: the consumer group and the prefix of the changelog topics."""
    return f"{settings.topics.prefix}-processor"


def faust_settings(settings: Settings, *, partitions: int) -> dict[str, Any]:
    """Everything Faust is told, converted to its units here and nowhere else."""
    return {
        "broker": [f"kafka://{host}" for host in settings.kafka.bootstrap.split(",")],
        "store": "memory://",
        "datadir": str(settings.state_dir / "processor"),
        "topic_partitions": partitions,
        "topic_replication_factor": settings.topics.replication,
        "table_standby_replicas": 0,
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "consumer_max_fetch_size": 16 << 20,
        "stream_recovery_delay": 0.2,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "producer_compression_type": "zstd",
        "producer_linger": 0.01,
        "producer_max_batch_size": 1 << 20,
        "producer_max_request_size": max(2 * settings.kafka.max_message_bytes, 1 << 20),
        "web_enabled": False,
        **_credentials(settings),
    }


def _credentials(settings: Settings) -> dict[str, Any]:
    """The same TLS/SASL settings the SDK and sinks use, in Faust's terms."""
    if settings.kafka.security_protocol == "PLAINTEXT":
        return {}
    ssl_context = settings.kafka.security_kwargs().get("ssl_context")
    if "SASL" in settings.kafka.security_protocol:
        creds: Any = faust.SASLCredentials(
            username=settings.kafka.sasl_username,
            password=settings.kafka.sasl_password,
            ssl_context=ssl_context,
            mechanism=settings.kafka.sasl_mechanism or "SCRAM-SHA-512",
        )
    else:
        creds = faust.SSLCredentials(ssl_context)
    return {"broker_credentials": creds}


def build_app(settings: Settings, *, partitions: int) -> tuple[faust.App, ProcessorWorker]:
    """The processor app for topics with ``partitions`` partitions (metrics and events must agree)."""
    config = ProcessorConfig.from_settings(settings)
    app = faust.App(app_id(settings), **faust_settings(settings, partitions=partitions))
    source = app.topic(settings.metrics_topic, settings.events_topic, **_RAW)
    tables = {
        name: app.tables.add(
            RoutedTable(
                app,
                name=name,
                key_type=bytes,
                value_type=bytes,
                partitions=partitions,
                beacon=app.tables.beacon,
                extra_topic_configs=_TOPIC_CONFIG,
                help=doc,
            )
        )
        for name, doc in (("runs", "one state record per run"), ("state", "series, rank and index state"))
    }
    worker = ProcessorWorker(
        app,
        settings,
        Pipeline(RunEngine(config), metrics_topic=settings.metrics_topic, events_topic=settings.events_topic),
        runs=tables["runs"],
        state=tables["state"],
        derived=app.topic(settings.derived_topic, **_RAW),
        alerts=app.topic(settings.alerts_topic, **_RAW),
        dead_letters=app.topic(settings.dead_letter_topic, **_RAW),
    )
    batch, within = settings.processor.batch_records, settings.processor.batch_seconds

    @app.agent(source, name="fleetlog-processor", concurrency=1)
    async def process(stream: StreamT) -> None:
        events: list[EventT]
        async for events in stream.take_events(batch, within=within):
            await worker.handle(list(events))

    @app.timer(1.0)
    async def clock() -> None:
        await worker.tick()

    @app.on_before_shutdown.connect
    async def forget_status(sender: Any, **kwargs: Any) -> None:
        worker.remove_status()

    return app, worker
