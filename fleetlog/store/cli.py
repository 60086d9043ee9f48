"""``fleetlog store ...``: serve, migrate and print the schema of a ClickHouse store."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fleetlog.config import Settings, mask_url

__all__ = ["register"]

store_app = typer.Typer(help="The ClickHouse store: serve it, migrate it, print its schema.", no_args_is_help=True)

PathOpt = Annotated[
    Optional[str],  # noqa: UP045 -- typer reads the annotation at runtime
    typer.Option("--path", help="chDB directory (default: FLEETLOG_CLICKHOUSE_URL's, else $FLEETLOG_HOME/store)"),
]


@store_app.command("serve")
def serve(
    path: PathOpt = None,
    host: Annotated[Optional[str], typer.Option(help="address [FLEETLOG_HTTP_HOST]")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(help="port [FLEETLOG_HTTP_PORT]")] = None,  # noqa: UP045
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Own an embedded store and serve ClickHouse's HTTP interface over it, without consuming Kafka.

    Sinks then write to it with FLEETLOG_CLICKHOUSE_URL=http://HOST:PORT/fleetlog, as to a server.
    """
    from fleetlog.store.serve import serve_store

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env(http_host=host, http_port=port)
    serve_store(settings, path=Path(path) if path else None)


@store_app.command("credentials")
def credentials(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    writer: Annotated[bool, typer.Option("--writer", help="the writer's (sinks'), not the read-only reader's")] = False,
) -> None:
    """Print how any ClickHouse client logs in to the embedded store: url, database, user, password.

    The reader's by default (read-only in the engine); the writer's with --writer. They are
    generated on first need into $FLEETLOG_HOME/credentials/store.json (mode 0600).
    """
    import json
    from urllib.parse import urlsplit

    from fleetlog.credentials import is_local_store, load_credentials
    from fleetlog.store.client import DEFAULT_DATABASE

    settings = Settings.from_env()
    if not (settings.store.is_embedded or is_local_store(settings.store.url, settings)):
        typer.echo(
            f"FLEETLOG_CLICKHOUSE_URL is {mask_url(settings.store.url)}, a ClickHouse server: its users are its "
            "administrator's, fleetlog keeps credentials only for its embedded store",
            err=True,
        )
        raise typer.Exit(2)
    user = load_credentials(settings).user("writer" if writer else "reader")
    database = DEFAULT_DATABASE if settings.store.is_embedded else urlsplit(settings.store.url).path.strip("/")
    host = f"[{settings.store.http_host}]" if ":" in settings.store.http_host else settings.store.http_host
    found = {
        "url": f"http://{host}:{settings.store.http_port}",
        "database": database or DEFAULT_DATABASE,
        "user": user.name,
        "password": user.password,
    }
    if as_json:
        typer.echo(json.dumps(found))
        return
    typer.echo("\n".join(f"{key}: {value}" for key, value in found.items()))


@store_app.command("migrate")
def migrate(
    clickhouse: Annotated[Optional[str], typer.Option(help="store URL [FLEETLOG_CLICKHOUSE_URL]")] = None,  # noqa: UP045
) -> None:
    """Apply pending schema migrations and the retention settings (what a sink does on start)."""
    from fleetlog.credentials import store_url
    from fleetlog.store.client import open_store, schema_options

    settings = Settings.from_env(clickhouse_url=clickhouse)
    url = settings.store.url if settings.store.is_embedded else store_url(settings, "writer")
    client = open_store(url, options=schema_options(settings))
    versions = [row[0] for row in client.query("SELECT version FROM schema_migrations FINAL ORDER BY 1").result_rows]
    typer.echo(f"{mask_url(settings.store.url)}: schema versions {versions}")


@store_app.command("ddl")
def ddl(
    cluster: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="print the cluster flavour for this cluster (or '{cluster}', the macro)"),
    ] = None,
    database: Annotated[str, typer.Option(help="database of the cluster schema")] = "fleetlog",
) -> None:
    """Print the schema: single-node statements, or with --cluster what deploy/clickhouse/cluster.sql holds."""
    from fleetlog.store.client import schema_options
    from fleetlog.store.cluster import cluster_sql
    from fleetlog.store.schema import MIGRATIONS, MIGRATIONS_TABLE, render

    options = schema_options(Settings.from_env())
    if cluster is not None:
        sys.stdout.write(cluster_sql(cluster, database, options))
        return
    statements = [render(MIGRATIONS_TABLE)] + [render(s, options=options) for m in MIGRATIONS for s in m.statements]
    sys.stdout.write("".join(f"\n{s.strip()};\n" for s in statements))


def register(app: typer.Typer) -> None:
    """Add ``fleetlog store`` to the main app."""
    app.add_typer(store_app, name="store")
