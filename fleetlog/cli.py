"""The ``fleetlog`` command line.

Every command reads ``FLEETLOG_*`` settings; flags given on the command line
override them (defaults < environment < flags, as in ``Settings.from_env``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fleetlog.config import Settings, mask_url

__all__ = ["app", "main"]

app = typer.Typer(help="fleetlog: record what ML training runs log, query it in real time.", no_args_is_help=True)
kafka_app = typer.Typer(help="The local Kafka broker (KRaft, from Maven Central's JARs).", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
console = Console()

KafkaOpt = Annotated[Optional[str], typer.Option("--kafka", help="bootstrap servers [FLEETLOG_KAFKA_BOOTSTRAP]")]  # noqa: UP045
HomeOpt = Annotated[Optional[str], typer.Option("--home", help="state directory [FLEETLOG_HOME]")]  # noqa: UP045


def _settings(**overrides: object) -> Settings:
    return Settings.from_env(**overrides)


def _stack(home: str | None = None, kafka: str | None = None):
    from fleetlog.stack import LocalStack

    return LocalStack(_settings(home=home, kafka_bootstrap=kafka))


@kafka_app.command("start")
def kafka_start(home: HomeOpt = None, kafka: KafkaOpt = None) -> None:
    """Fetch Kafka if needed, format storage, start one broker+controller."""
    status = _stack(home, kafka).kafka.start()
    console.print(f"kafka running pid={status.pid} bootstrap={status.bootstrap}")


@kafka_app.command("stop")
def kafka_stop(home: HomeOpt = None, kafka: KafkaOpt = None) -> None:
    _stack(home, kafka).kafka.stop()
    console.print("kafka stopped")


@kafka_app.command("status")
def kafka_status(home: HomeOpt = None, kafka: KafkaOpt = None) -> None:
    status = _stack(home, kafka).kafka.status()
    console.print(f"running pid={status.pid} bootstrap={status.bootstrap}" if status.running else "stopped")
    raise typer.Exit(0 if status.running else 1)


@app.command()
def sink(
    home: HomeOpt = None,
    kafka: KafkaOpt = None,
    clickhouse: Annotated[Optional[str], typer.Option(help="store URL [FLEETLOG_CLICKHOUSE_URL]")] = None,  # noqa: UP045
    group: Annotated[str, typer.Option(help="consumer group")] = "fleetlog-sink",
    http_port: Annotated[Optional[int], typer.Option(help="embedded endpoint port")] = None,  # noqa: UP045
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
    instance_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="stable member name in the group [FLEETLOG_SINK_INSTANCE_ID]"),
    ] = None,
) -> None:
    """Run a sink worker in the foreground: Kafka -> ClickHouse (and the embedded endpoint)."""
    from fleetlog.sinks.service import run_sink

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings(
        home=home, kafka_bootstrap=kafka, clickhouse_url=clickhouse, http_port=http_port, sink_instance_id=instance_id
    )
    run_sink(settings, group_id=group)


@app.command()
def processor(
    home: HomeOpt = None,
    kafka: KafkaOpt = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run a stream-processor worker in the foreground (rollups, summaries, alerts; Faust)."""
    from fleetlog.processors.service import run_processor

    run_processor(_settings(home=home, kafka_bootstrap=kafka), loglevel=log_level.upper())


@app.command()
def up(home: HomeOpt = None, kafka: KafkaOpt = None) -> None:
    """Start the local stack in the background: broker and sink."""
    stack = _stack(home, kafka)
    with console.status("starting Kafka and the sink..."):
        stack.up()
    console.print(
        f"up: Kafka {stack.settings.kafka.bootstrap}, ClickHouse endpoint {stack.settings.store.http_url} "
        "(log in with `fleetlog store credentials --json`), "
        f"dashboard {stack.settings.ui.url}"
    )


@app.command()
def down(home: HomeOpt = None, kafka: KafkaOpt = None) -> None:
    """Stop the local stack (the sink flushes first)."""
    _stack(home, kafka).down()
    console.print("down")


async def _lags(settings: Settings) -> dict[str, dict[str, int]]:
    """How far each stage's consumer group is behind: the sink and the processors."""
    from fleetlog.lag import consumer_lag

    raw = [settings.metrics_topic, settings.events_topic]
    return {
        "fleetlog-sink": await consumer_lag(settings, "fleetlog-sink", [*raw, settings.derived_topic]),
        f"{settings.topics.prefix}-processor": await consumer_lag(settings, f"{settings.topics.prefix}-processor", raw),
    }


@app.command()
def status(
    home: HomeOpt = None,
    kafka: KafkaOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Each component's pid, state and address, the topics, and consumer lag."""
    stack = _stack(home, kafka)
    report = stack.status()
    report["clickhouse"] = mask_url(stack.settings.store.url)
    try:
        report["lag"] = asyncio.run(asyncio.wait_for(_lags(stack.settings), 10))
    except Exception as exc:  # status must answer even when Kafka does not
        report["lag"] = {"error": f"{type(exc).__name__}: {exc}"}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
        return
    table = Table("component", "state", "pid", "address")
    for name in [k for k, v in report.items() if isinstance(v, dict) and "state" in v]:
        c = report[name]
        table.add_row(*(Text(str(v)) for v in (name, c["state"], c["pid"] or "", c["address"] or "")))
    console.print(table)
    topics = ", ".join(report["topics"])
    console.print(Text(f"store: {report['clickhouse']}  topics: {topics}  lag: {report.get('lag')}"))


@app.command()
def sync(
    path: Annotated[Optional[str], typer.Argument(help="a spool directory (default: $FLEETLOG_HOME/spool)")] = None,  # noqa: UP045
    kafka: KafkaOpt = None,
) -> None:
    """Send spooled messages (offline runs, Kafka outages) to Kafka; repeats are dropped by the sink."""
    from pathlib import Path

    from fleetlog.producers.sync import sync_spool

    settings = _settings(kafka_bootstrap=kafka)
    report = asyncio.run(sync_spool(settings, Path(path) if path else None))
    console.print(
        f"synced {report.sessions} spool(s): {report.messages:,} messages, {report.points:,} points"
        + (f"; {report.skipped_busy} skipped (owned by a running process)" if report.skipped_busy else "")
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="the training script; arguments after `--` go to it")],
    experiment: Annotated[Optional[str], typer.Option(help="experiment name (default: script name)")] = None,  # noqa: UP045
    source_directory: Annotated[str, typer.Option(help="working directory of the script")] = ".",
) -> None:
    """Run a script as a fleetlog run, streaming its output (ScriptRunConfig + submit)."""
    from pathlib import Path

    import fleetlog

    config = fleetlog.ScriptRunConfig(source_directory=source_directory, script=script, arguments=list(ctx.args))
    exp = fleetlog.Experiment(experiment or Path(script).stem)
    run = exp.submit(config, show_output=True)
    console.print(f"[bold]run {escape(run.id)}[/] submitted")
    details = run.wait_for_completion(show_output=True, raise_on_error=False)
    exp.close()
    console.print(Text(f"run {run.id}: {details['status']} (exit code {details['exitCode']})"))
    raise typer.Exit(0 if details["exitCode"] == 0 else 1)


@app.command()
def demo(
    runs: Annotated[int, typer.Option(help="simulated runs")] = 3,
    ranks: Annotated[int, typer.Option(help="ranks per run")] = 2,
    steps: Annotated[int, typer.Option(help="steps per rank")] = 3000,
    seconds: Annotated[float, typer.Option(help="how long each rank trains")] = 20.0,
) -> None:
    """Start the stack, run a simulated training fleet end to end, print what landed."""
    from fleetlog.demo import FleetPlan
    from fleetlog.showcase import run_demo

    figures = run_demo(_settings(), FleetPlan(runs=runs, ranks=ranks, steps=steps, seconds=seconds), console)
    if figures["landed"] != figures["expected"]:
        console.print(f"[red]only {figures['landed']:,} of {figures['expected']:,} points landed[/]")
        raise typer.Exit(1)


# Command groups that live in their own modules register here.
for _module in ("fleetlog.cli_read", "fleetlog.cli_models", "fleetlog.store.cli"):
    importlib.import_module(_module).register(app)


def main() -> None:
    app()
