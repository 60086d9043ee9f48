"""The dashboard's JSON API: thin handlers over :mod:`fleetlog.query`.

Handlers are plain functions, so Starlette runs them in its thread pool and a slow
query never blocks the event loop. Errors map to status codes in one place
(:func:`_guard`): store unreachable 503, unknown run 404, bad argument 400.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from clickhouse_connect.driver.exceptions import ClickHouseError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetlog import query as q
from fleetlog.config import Settings
from fleetlog.errors import RunNotFound, StoreUnavailable
from fleetlog.jsonable import jsonable
from fleetlog.query import handle

__all__ = ["routes"]

Handler = Callable[[Request, Settings], Any]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [jsonable(r) for r in frame.to_dict("records")] if not frame.empty else []


def _numbers(values: pd.Series) -> list[float | None]:
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(arr), arr, None).tolist()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), separators=(",", ":"), allow_nan=False).encode()


def _guard(handler: Handler, settings: Settings) -> Callable[[Request], Response]:
    @functools.wraps(handler)
    def endpoint(request: Request) -> Response:
        try:
            result = handler(request, settings)
        except StoreUnavailable as exc:
            return JSON({"error": str(exc)}, status_code=503)
        except RunNotFound as exc:
            return JSON({"error": str(exc)}, status_code=404)
        except (ValueError, KeyError) as exc:
            return JSON({"error": str(exc)}, status_code=400)
        except ClickHouseError as exc:
            return JSON({"error": str(exc)}, status_code=500)
        return result if isinstance(result, Response) else JSON(result)

    return endpoint


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


# -- handlers -------------------------------------------------------------------------------------


def health(request: Request, settings: Settings) -> Any:
    try:
        q.sql("SELECT 1", settings=settings)
    except StoreUnavailable as exc:
        return {"ok": False, "store": str(exc)}
    return {"ok": True}


def experiments(request: Request, settings: Settings) -> Any:
    return {"experiments": _records(q.experiments(settings=settings))}


def runs(request: Request, settings: Settings) -> Any:
    p = request.query_params
    where, bound = None, {}
    if p.get("q"):
        where = "positionCaseInsensitiveUTF8(concat(run_id, ' ', name, ' ', experiment), {_q:String}) > 0"
        bound["_q"] = p["q"]
    frame = q.runs(
        experiment=p.getlist("experiment") or None,
        status=p.getlist("status") or None,
        where=where,
        parameters=bound,
        metrics=p.getlist("metric"),
        order_by=p.get("order", "-start_time"),
        limit=_int(request, "limit", 500),
        settings=settings,
    )
    texts = handle.latest_text_metrics(frame["run_id"].tolist() if not frame.empty else [], settings)
    names = sorted({name for values in texts.values() for name in values})
    rows = _records(frame)
    for row in rows:
        row.update({f"text.{n}": texts.get(row["run_id"], {}).get(n) for n in names})
    return {
        "runs": rows,
        "params": sorted(c[7:] for c in frame.columns if c.startswith("params.")),
        "tags": sorted(c[5:] for c in frame.columns if c.startswith("tags.")),
        "texts": names,  # string metrics (run.log('Category', 'Red')): columns text.<name>
    }


def run(request: Request, settings: Settings) -> Any:
    run_id = request.path_params["run_id"]
    record = q.run(run_id, settings=settings)
    record["metrics"] = _records(q.summaries([run_id], settings=settings))
    return record


def series(request: Request, settings: Settings) -> Any:
    p = request.query_params
    run_ids = p.getlist("run")
    if not run_ids or not p.get("metric"):
        raise ValueError("series needs run=<id> (one or more) and metric=<name>")
    raw_res = p.get("resolution", "auto")
    resolution: str | int = int(raw_res) if raw_res.isdigit() else raw_res
    start, end = _int(request, "start"), _int(request, "end")
    frame = q.metric(
        run_ids,
        p["metric"],
        resolution=resolution,
        step_range=(start, end) if start is not None or end is not None else None,
        points=min(max(_int(request, "points", 1500) or 1500, 10), 20_000),
        rank=_int(request, "rank"),
        settings=settings,
    )
    out = []
    for (run_id, rank), part in frame.groupby(["run_id", "rank"], sort=True):
        out.append(
            {
                "run_id": run_id,
                "rank": int(rank),
                "step": part["step"].astype("int64").tolist(),
                "value": _numbers(part["value"]),
                "min": _numbers(part["min"]),
                "max": _numbers(part["max"]),
                "nonfinite": int(part["nonfinite"].sum()),
            }
        )
    return {"metric": p["metric"], "resolution": frame.attrs["resolution"], "series": out}


def compare(request: Request, settings: Settings) -> Any:
    run_ids = request.query_params.getlist("run")
    every = q.metric_names(run_ids, settings=settings)
    chosen = request.query_params.getlist("metric") or _default_metrics(every)
    frame = q.compare(run_ids, chosen, settings=settings)
    return {"runs": _records(frame), "columns": list(frame.columns), "metrics": every, "chosen": chosen}


def _default_metrics(names: list[str], count: int = 6) -> list[str]:
    """What a comparison charts first: training/eval curves, then others; telemetry only if nothing else."""
    first = ("train/", "eval/", "val/", "valid/", "test/")
    picked = sorted((n for n in names if not n.startswith("sys/")), key=lambda n: (not n.startswith(first), n))
    return (picked or sorted(names))[:count]


def logs(request: Request, settings: Settings) -> Any:
    p = request.query_params
    frame = q.logs(
        request.path_params["run_id"],
        stream=p.getlist("stream") or None,
        since=p.get("since") or None,
        limit=_int(request, "limit", 500),
        settings=settings,
    )
    return {"available": frame.attrs.get("available", False), "lines": _records(frame)}


def alerts(request: Request, settings: Settings) -> Any:
    frame = q.alerts(request.path_params["run_id"], settings=settings)
    return {"available": frame.attrs.get("available", False), "alerts": _records(frame)}


def tables(request: Request, settings: Settings) -> Any:
    frame = q.tables(request.path_params["run_id"], settings=settings)
    return {"available": frame.attrs.get("available", False), "tables": _records(frame)}


def table(request: Request, settings: Settings) -> Any:
    frame = q.tables(request.path_params["run_id"], request.path_params["name"], settings=settings)
    if frame.empty and not len(frame.columns):
        raise RunNotFound(f"no table {request.path_params['name']!r} in run {request.path_params['run_id']!r}")
    return {"columns": [str(c) for c in frame.columns], "rows": [jsonable(list(r)) for r in frame.head(1000).values]}


def artifacts(request: Request, settings: Settings) -> Any:
    frame = q.artifacts(request.path_params["run_id"], settings=settings)
    return {"available": frame.attrs.get("available", False), "artifacts": _records(frame)}


def artifact(request: Request, settings: Settings) -> Response:
    """An artifact's bytes: inline ones from the store, else the file at the run's own location.

    The location is rebuilt from the configured artifact root, the run id and the artifact's
    name, as uploads lay it out (``producers/_artifacts.py``: ``<root>/<run>/<name>``, images
    at ``<run>/images/<name><ext>``); the URI stored with the record is never followed, since
    whoever can write records could point it anywhere (``local:///etc/...``,
    ``simplecache::file://...``). Only raster images are shown inline; everything else
    downloads, so an uploaded page never runs in the dashboard's origin.
    """
    run_id, name = _relative(request.path_params["run_id"], "run id"), _relative(request.path_params["name"], "name")
    record = q.artifact(run_id, name, settings=settings)
    if record["inline"]:
        body, media = bytes(record["inline"]), str(record["content_type"] or "")
    else:
        rel = _relative(_stored_as(record, name), "artifact path")
        body = _read_artifact(settings.sdk.artifacts_url, run_id, rel)
        media = _RASTER.get(posixpath.splitext(rel)[1].lower()) or mimetypes.guess_type(rel)[0] or ""
    headers = {"Content-Security-Policy": _ARTIFACT_CSP}
    if media not in _RASTER.values():
        filename = quote(posixpath.basename(name), safe="")
        headers["Content-Disposition"] = f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    return Response(body, media_type=media or "application/octet-stream", headers=headers)


_RASTER = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
_IMAGE_SUFFIXES = (*_RASTER, ".bmp", ".svg")  # what log_image accepts
_ARTIFACT_CSP = "default-src 'none'; sandbox"
_FORBIDDEN = ("\\", "\x00", "::", "\r", "\n")


def _stored_as(record: dict[str, Any], name: str) -> str:
    """Where under the run's folder the upload put ``name``: the name itself, or an image's file.

    The stored URI only tells which of log_image's suffixes the image had (png, jpg...).
    """
    if record.get("kind") != "image":
        return name
    suffix = posixpath.splitext(str(record.get("uri") or ""))[1].lower()
    return f"images/{name}{suffix if suffix in _IMAGE_SUFFIXES else '.png'}"


def _relative(value: str, what: str) -> str:
    """``value`` if it is a normalised relative path that stays below where it starts; else ValueError."""
    clean = posixpath.normpath(value) if value else ""
    escapes = clean.startswith("/") or clean.split("/")[0] == ".."
    if not value or clean != value or escapes or any(bad in value for bad in _FORBIDDEN):
        raise ValueError(f"{what} {value!r} must be a relative path inside the run (no '..', not absolute)")
    return clean


def _read_artifact(root_url: str, run_id: str, name: str) -> bytes:
    """``root_url``/``run_id``/``name``: a local file must resolve (symlinks too) inside the root."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(root_url.rstrip("/"))
    if "file" in fs.protocol or "local" in fs.protocol:
        base = Path(root).resolve()
        path = (base / run_id / name).resolve()
        if not path.is_relative_to(base / run_id) or not path.is_file():
            raise RunNotFound(f"artifact {name!r} of run {run_id!r} is not in {base / run_id}")
        return path.read_bytes()
    with fs.open(f"{root.rstrip('/')}/{run_id}/{name}", "rb") as f:
        return f.read()


def fleet(request: Request, settings: Settings) -> Any:
    result = q.fleet(settings=settings)
    return {name: _records(frame) for name, frame in result.items()}


def metric_names(request: Request, settings: Settings) -> Any:
    return {"metrics": q.metric_names(request.query_params.getlist("run"), settings=settings)}


def models(request: Request, settings: Settings) -> Any:
    """Registered models, newest version first per name: ``?name=`` one model's versions (and their runs),
    ``?run=`` the models a run registered."""
    params = request.query_params
    frame = q.models(params.get("name") or None, run_id=params.get("run") or None, settings=settings)
    return {"models": _records(frame.drop(columns=["registration_id", "url"]))}


def routes(settings: Settings) -> list[Route]:
    """The API's routes, bound to ``settings``."""
    table_ = [
        ("/api/health", health),
        ("/api/experiments", experiments),
        ("/api/runs", runs),
        ("/api/runs/{run_id:path}/logs", logs),
        ("/api/runs/{run_id:path}/alerts", alerts),
        ("/api/runs/{run_id:path}/tables", tables),
        ("/api/runs/{run_id:path}/table/{name:path}", table),
        ("/api/runs/{run_id:path}/artifacts", artifacts),
        ("/api/runs/{run_id:path}/artifact/{name:path}", artifact),
        ("/api/runs/{run_id:path}", run),
        ("/api/series", series),
        ("/api/metrics", metric_names),
        ("/api/compare", compare),
        ("/api/fleet", fleet),
        ("/api/models", models),
    ]
    return [Route(path, _guard(handler, settings), methods=["GET"]) for path, handler in table_]
