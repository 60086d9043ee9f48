"""Reading the model registry (``models``): list, filter by name and tags, find one version.

Tags and properties are stored as JSON text (``{"k": "v"}``); they come back as dicts.  A tag
filter is Azure's: ``["stage"]`` (the tag is set) or ``[["stage", "prod"]]`` (set to that value),
all of them required; a plain mapping ``{"stage": "prod"}`` works too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from fleetlog.config import Settings
from fleetlog.query.client import df, tables_present

__all__ = ["MODEL_COLUMNS", "model_row", "models", "registration"]

MODEL_COLUMNS = (
    "name",
    "version",
    "run_id",
    "experiment",
    "project",
    "url",
    "path",
    "description",
    "tags",
    "properties",
    "size",
    "ts",
    "registration_id",
)
_SELECT = f"SELECT {', '.join(MODEL_COLUMNS)} FROM models FINAL"


def _tag_pairs(tags: Iterable[Any] | Mapping[str, Any] | None) -> list[tuple[str, str | None]]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [(str(k), None if v is None else str(v)) for k, v in tags.items()]
    if isinstance(tags, str):
        return [(tags, None)]
    pairs: list[tuple[str, str | None]] = []
    for tag in tags:
        if isinstance(tag, str):
            pairs.append((tag, None))
        elif isinstance(tag, (list, tuple)) and len(tag) == 2:
            pairs.append((str(tag[0]), str(tag[1])))
        else:
            raise ValueError(f"a tag filter is 'key' or ['key', 'value'], got {tag!r}")
    return pairs


def _decoded(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("tags", "properties"):
        frame[column] = [json.loads(text) if text else {} for text in frame[column]]
    frame["version"] = frame["version"].astype(int)
    return frame


def models(
    name: str | None = None,
    tags: Iterable[Any] | Mapping[str, Any] | None = None,
    *,
    properties: Iterable[Any] | Mapping[str, Any] | None = None,
    run_id: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Registered models, newest version first per name (names in order); empty when none is registered yet.

    ``tags`` and ``properties`` filter alike (see the module docstring).
    """
    settings = settings or Settings.from_env()
    if "models" not in tables_present(settings):
        return pd.DataFrame(columns=list(MODEL_COLUMNS))
    frame = df(
        settings,
        f"{_SELECT} WHERE ({{n:String}} = '' OR name = {{n:String}}) AND ({{r:String}} = '' OR run_id = {{r:String}}) "
        "ORDER BY name, version DESC",
        {"n": name or "", "r": run_id or ""},
    )
    frame = _decoded(frame)
    for column, wanted in (("tags", tags), ("properties", properties)):
        for key, value in _tag_pairs(wanted):
            frame = frame[[key in t and (value is None or t[key] == value) for t in frame[column]]]
    return frame.reset_index(drop=True)


def model_row(name: str, version: int | None, settings: Settings) -> dict[str, Any] | None:
    """One version's row (the latest when ``version`` is None), or None."""
    frame = models(name, settings=settings)
    if version is not None:
        frame = frame[frame["version"] == int(version)]
    return None if frame.empty else frame.iloc[0].to_dict()


def registration(registration_id: str, settings: Settings) -> dict[str, Any] | None:
    """The row the sink stored for one registration, or None while it has not landed."""
    if "models" not in tables_present(settings):
        return None
    frame = df(settings, f"{_SELECT} WHERE registration_id = {{g:String}}", {"g": registration_id})
    return None if frame.empty else _decoded(frame).iloc[0].to_dict()
