"""Reading back: runs, metric series, logs and more, returned as pandas DataFrames.

Every read goes through clickhouse-connect's HTTP client, so the same code reads
the embedded store (through the endpoint its owning process serves) and a
ClickHouse server.  Values are bound server-side (``{name:Type}`` placeholders);
nothing a user passes is ever pasted into SQL text: column names chosen by a
caller (``order_by``) are checked against the columns that exist.

Tables and columns are the schema's (:mod:`fleetlog.store.schema_tables`).  Tables
filled by stream processors (rollups, summaries, alerts, run summaries) and by the
SDK's richer record kinds (logs, tables, images) are used when the store has them
(``system.tables``) and skipped when it does not; ``metric`` then downsamples raw
points on the server and says so in ``df.attrs["resolution"]``.

    import fleetlog.query as q
    q.runs(experiment="mnist", params={"opt.lr": 0.1}, metrics=["loss"])
    q.metric(["run-a", "run-b"], "loss")            # ~1,500 points per series, min/max envelope
    q.sql("SELECT count() FROM metric_points WHERE run_id = {r:String}", {"r": "run-a"})

The modules: ``client`` (the cached reader and ``StoreUnavailable``), ``sql`` (binding
and filters), ``runs`` (runs, experiments, summaries, compare), ``series`` (metric
series; planning in ``series_plan``), ``records`` (logs, tables, artifacts, alerts),
``fleet`` (what runs now), ``models`` (the model registry) and ``handle`` (what a ``fleetlog.Run`` reads back).
"""

from __future__ import annotations

from fleetlog.query.client import client, reader_url
from fleetlog.query.fleet import fleet
from fleetlog.query.models import models
from fleetlog.query.records import alerts, artifact, artifacts, images, logs, tables
from fleetlog.query.runs import RUN_COLUMNS, TERMINAL, compare, experiments, run, runs, summaries
from fleetlog.query.series import Resolution, metric, metric_names, points_stream
from fleetlog.query.sql import sql

__all__ = [
    "RUN_COLUMNS",
    "TERMINAL",
    "Resolution",
    "alerts",
    "artifact",
    "artifacts",
    "client",
    "compare",
    "experiments",
    "fleet",
    "images",
    "logs",
    "metric",
    "metric_names",
    "models",
    "points_stream",
    "reader_url",
    "run",
    "runs",
    "sql",
    "summaries",
    "tables",
]
