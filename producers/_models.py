"""Sending a model registration: the files into the artifact store, then one ``model`` event.

The files are copied before the call returns (as ``upload_file`` takes its bytes at the call),
under ``<artifact root>/models/<name>/<registration id>/<basename of model_path>``: the version
is not known yet -- the sink numbers it (:mod:`fleetlog.sinks._models`) -- so the folder is
named by the registration's own id, which never changes.  The event's envelope is keyed by
the model name (:func:`fleetlog.events.models.model_stream_id`), not by the run: all of a
name's registrations share one partition.  Waiting for the number is the read side's
(:func:`fleetlog.models.register`); this module only sends.
"""

from __future__ import annotations

import os
import posixpath
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetlog.events.models import MODEL_KIND, check_model_name, model_stream_id

if TYPE_CHECKING:
    from fleetlog.producers.run import Run

__all__ = ["Registration", "send_registration"]


@dataclass(frozen=True, slots=True)
class Registration:
    """What was sent: the id the sink will number, where the files are, their total size."""

    name: str
    registration_id: str
    url: str
    path: str
    size: int


def _labels(what: str, value: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags and properties as Azure keeps them: string keys, values as text (``None`` -> ``""``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise TypeError(f"register_model {what} must be a mapping with non-empty str keys, got {value!r}")
    return {k: "" if v is None else str(v) for k, v in value.items()}


def _copy(run: Run, source: Path, folder: str) -> int:
    """Copy a file or a directory tree into ``folder`` of the artifact store; the bytes copied."""
    store = run._artifacts
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    size = 0
    for path in files:
        rel = source.name if path == source else posixpath.join(source.name, path.relative_to(source).as_posix())
        target = f"{store.root}/{folder}/{rel}"
        store.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        store.fs.put_file(str(path), target)
        size += path.stat().st_size
    return size


def send_registration(
    run: Run,
    model_name: str,
    model_path: str | os.PathLike,
    *,
    tags: Mapping[str, Any] | None = None,
    properties: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Registration:
    """Copy ``model_path`` (a file or a folder) into the store and queue its ``model`` event; not flushed."""
    name = check_model_name(model_name)
    source = Path(model_path)
    if not source.exists():
        raise FileNotFoundError(f"register_model: no file or folder {str(source)!r} (model_path is a local path)")
    if description is not None and not isinstance(description, str):
        raise TypeError(f"register_model description must be a str, got {type(description).__name__}")
    body_labels = {"tags": _labels("tags", tags), "properties": _labels("properties", properties)}
    reg = uuid.uuid4().hex
    folder = f"models/{name}/{reg}"
    size = _copy(run, source, folder)
    url = f"{run._artifacts.url}/{folder}"
    body = {
        "name": name,
        "registration_id": reg,
        "run_id": run.id,
        "url": url,
        "path": source.name,
        "description": description or "",
        **body_labels,
        "size": size,
        "time": time.time(),
    }
    stream = run._stream
    stream.events.append(
        replace(stream.template, kind=MODEL_KIND, run_id=model_stream_id(name), body=body, sent_at=time.time())
    )
    run._sender.wake()
    return Registration(name, reg, url, source.name, size)
