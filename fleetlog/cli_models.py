"""``fleetlog models list|show|download``: the model registry from the command line.

Registered by ``fleetlog.cli``.  Same conventions as the other reading commands
(:mod:`fleetlog.cli_read`): rich tables or ``--json``; exit 2 when the store cannot be
reached, 1 for an unknown model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fleetlog.cli_read import _json, _pairs, _print_frame, _reading, console, err_console

__all__ = ["models_app", "register"]

models_app = typer.Typer(help="The model registry: registered models and their versions.", no_args_is_help=True)

Names = Optional[list[str]]  # noqa: UP045 - typer reads it at run time, also on Python 3.10
_LISTED = ["name", "version", "run_id", "experiment", "created", "size", "tags", "description"]


def _model(name: str, version: int | None) -> Any:
    from fleetlog.models import Model, ModelNotFound

    try:
        return Model(None, name, version=version)
    except ModelNotFound as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


@models_app.command("list")
@_reading
def list_cmd(
    name: Annotated[Optional[str], typer.Argument(help="only this model's versions")] = None,  # noqa: UP045
    tag: Annotated[Names, typer.Option(help="key=value or key (repeatable)")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="only models this run registered")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output (JSON)")] = False,
) -> None:
    """List registered models, newest version first per name."""
    from fleetlog import query as q

    frame = q.models(name, _pairs(tag, "--tag") if tag else None, run_id=run)
    if as_json:
        _json(frame.drop(columns=["registration_id"]).to_dict("records"))
        return
    if frame.empty:
        console.print("no models registered" + (f" under {name!r}" if name else ""))
        return
    frame = frame.rename(columns={"ts": "created"})
    frame["tags"] = [", ".join(f"{k}={v}" if v else k for k, v in t.items()) for t in frame["tags"]]
    _print_frame(frame[_LISTED])


@models_app.command("show")
@_reading
def show(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[Optional[int], typer.Option(help="a version; the latest by default")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output (JSON)")] = False,
) -> None:
    """One version of a model: its run, files, tags and properties."""
    model = _model(name, version)
    record = {
        "name": model.name,
        "version": model.version,
        "run_id": model.run_id,
        "experiment": model.experiment_name,
        "url": model.url,
        "created": model.created_time,
        "size": model.size,
        "description": model.description,
        "tags": model.tags,
        "properties": model.properties,
    }
    if as_json:
        _json(record)
        return
    for key, value in record.items():
        text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        console.print(f"[bold]{key:>11}[/]  ", end="")
        console.print(text, markup=False, highlight=False)


@models_app.command("download")
@_reading
def download(
    name: Annotated[str, typer.Argument(help="model name")],
    target_dir: Annotated[Path, typer.Argument(help="folder to copy the model into")] = Path("."),
    version: Annotated[Optional[int], typer.Option(help="a version; the latest by default")] = None,  # noqa: UP045
    overwrite: Annotated[bool, typer.Option(help="replace what is already there")] = False,
) -> None:
    """Copy a model's file or folder into TARGET_DIR and print where it went."""
    model = _model(name, version)
    try:
        path = model.download(target_dir, exist_ok=overwrite)
    except FileExistsError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(path, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``fleetlog models ...`` to the main app."""
    app.add_typer(models_app, name="models")
