"""One function per event kind: validate an envelope's body and turn it into table rows.

Each returns ``(table, rows)``; anything malformed raises ``InvalidEvent`` with a
reason, which the caller turns into a dead letter.  Text is capped so a hostile
client cannot make one row arbitrarily large.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleetlog.events import Envelope, InvalidEvent
from fleetlog.events.models import check_model_name, model_stream_id
from fleetlog.events.values import to_text

__all__ = ["MAX_TEXT", "ROW_BUILDERS"]

MAX_TEXT = 1 << 20
MAX_INLINE = 8 << 20

Rows = tuple[str, list[dict[str, Any]]]


def _text(body: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"field {key!r} must be a string")
    return value[:limit]


def _number(body: dict[str, Any], key: str, lo: float = 0, hi: float = 1e11) -> float:
    value = body.get(key, 0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value < hi:
        raise InvalidEvent(f"field {key!r} must be a number in [{lo}, {hi})")
    return value


def run_rows(env: Envelope) -> Rows:
    body = env.body
    error = body.get("error") or {}
    if not isinstance(error, dict):
        raise InvalidEvent("run field 'error' must be a map")
    end = _number(body, "end")
    row = {
        "run_id": env.run_id,
        "project": env.project,
        "experiment": env.experiment,
        "name": _text(body, "name"),
        "description": _text(body, "description"),
        "parent_run_id": _text(body, "parent"),
        "status": _text(body, "status", 32),
        "start_time": _number(body, "start"),
        "end_time": end or None,
        "error_type": _text(error, "type"),
        "error_message": _text(error, "message"),
        "error_traceback": _text(error, "traceback"),
        "host": env.source.host,
        "pid": env.source.pid,
        "rank": env.source.rank,
        "world_size": env.source.world_size,
        "updated_at": env.sent_at,
    }
    return "runs", [row]


def _key_values(table: str) -> Callable[[Envelope], Rows]:
    def build(env: Envelope) -> Rows:
        rows = []
        for key, value in env.body.items():
            if not isinstance(key, str) or not key:
                raise InvalidEvent(f"{env.kind} keys must be non-empty strings")
            try:
                text, kind = to_text(value)
            except TypeError as exc:
                raise InvalidEvent(f"{env.kind} value for {key[:100]!r} has {exc}") from None
            rows.append(
                {
                    "run_id": env.run_id,
                    "key": key[:MAX_TEXT],
                    "value": text[:MAX_TEXT],
                    "value_type": kind,
                    "updated_at": env.sent_at,
                }
            )
        return table, rows

    return build


def untag_rows(env: Envelope) -> Rows:
    keys = env.body.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise InvalidEvent("untag needs {'keys': [non-empty strings]}")
    rows = [
        {"run_id": env.run_id, "key": k[:MAX_TEXT], "value": "", "value_type": "deleted", "updated_at": env.sent_at}
        for k in keys
    ]
    return "run_tags", rows


def record_rows(env: Envelope) -> Rows:
    body = env.body
    step = body.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or not -(2**63) <= step < 2**63):
        raise InvalidEvent("record 'step' must be a 64-bit int or absent")
    try:
        data = json.dumps(body.get("data"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"record data is not JSON-like: {exc}") from None
    if len(data) > 64 * MAX_TEXT:
        raise InvalidEvent(f"record data is {len(data)} bytes; the limit is {64 * MAX_TEXT}")
    row = {
        "run_id": env.run_id,
        "name": _text(body, "name", 1024),
        "type": _text(body, "type", 64),
        "description": _text(body, "description"),
        "data": data,
        "idx": int(_number(body, "index", 0, 2**63)),
        "step": step,
        "ts": _number(body, "time"),
    }
    if not row["name"] or not row["type"]:
        raise InvalidEvent("record needs a name and a type")
    return "run_records", [row]


def artifact_rows(env: Envelope) -> Rows:
    body = env.body
    inline = body.get("inline") or b""
    if not isinstance(inline, bytes) or len(inline) > MAX_INLINE:
        raise InvalidEvent(f"artifact 'inline' must be bytes of at most {MAX_INLINE}")
    row = {
        "run_id": env.run_id,
        "name": _text(body, "name", 4096),
        "kind": _text(body, "kind", 32),
        "size": int(_number(body, "size", 0, 2**63)),
        "sha256": _text(body, "sha256", 64),
        "uri": _text(body, "uri", 4096),
        "content_type": _text(body, "content_type", 128),
        "description": _text(body, "description"),
        "inline": inline,
        "ts": _number(body, "time"),
    }
    if not row["name"]:
        raise InvalidEvent("artifact needs a name")
    return "run_artifacts", [row]


def log_rows(env: Envelope) -> Rows:
    cols = env.body
    names = ("ts", "stream", "level", "logger", "message")
    if not all(isinstance(cols.get(n), list) for n in names):
        raise InvalidEvent(f"logs need list columns {names}")
    n = len(cols["ts"])
    if any(len(cols[c]) != n for c in names):
        raise InvalidEvent("log columns have different lengths")
    rows = []
    for i in range(n):
        ts, stream, level, logger, message = (cols[c][i] for c in names)
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not 0 <= ts < 1e14:
            raise InvalidEvent("a log line's ts must be unix milliseconds")
        if not all(isinstance(x, str) for x in (stream, level, logger, message)):
            raise InvalidEvent("a log line needs string stream/level/logger/message")
        rows.append(
            {
                "run_id": env.run_id,
                "ts": ts / 1000.0,
                "rank": env.source.rank,
                "stream": stream[:64],
                "level": level[:32],
                "logger": logger[:256],
                "message": message[:MAX_TEXT],
                "seq": env.seq * 100_000 + i,
            }
        )
    return "run_logs", rows


def heartbeat_rows(env: Envelope) -> Rows:
    row = {
        "run_id": env.run_id,
        "rank": env.source.rank,
        "host": env.source.host,
        "pid": env.source.pid,
        "ts": _number(env.body, "time"),
    }
    return "run_heartbeats", [row]


def model_rows(env: Envelope) -> Rows:
    """A registration's row with version 0: the sink numbers it at insert time (:mod:`fleetlog.sinks._models`)."""
    body = env.body
    try:
        name = check_model_name(body.get("name"))
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    if model_stream_id(name) != env.run_id:
        raise InvalidEvent(f"model {name!r} came keyed {env.run_id[:100]!r}, not {model_stream_id(name)!r}")
    labels = {}
    for key in ("tags", "properties"):
        value = body.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise InvalidEvent(f"model {key!r} must map strings to strings")
        labels[key] = json.dumps(value, sort_keys=True)[:MAX_TEXT]
    row = {
        "name": name,
        "version": 0,
        "registration_id": _text(body, "registration_id", 64),
        "run_id": _text(body, "run_id", 256),
        "experiment": env.experiment,
        "project": env.project,
        "url": _text(body, "url", 4096),
        "path": _text(body, "path", 4096),
        "description": _text(body, "description"),
        "tags": labels["tags"],
        "properties": labels["properties"],
        "size": int(_number(body, "size", 0, 2**63)),
        "ts": _number(body, "time"),
    }
    if not row["registration_id"] or not row["url"]:
        raise InvalidEvent("a model registration needs a registration_id and a url")
    return "models", [row]


ROW_BUILDERS: dict[str, Callable[[Envelope], Rows]] = {
    "model": model_rows,
    "run": run_rows,
    "params": _key_values("run_params"),
    "tags": _key_values("run_tags"),
    "properties": _key_values("run_properties"),
    "untag": untag_rows,
    "record": record_rows,
    "artifact": artifact_rows,
    "logs": log_rows,
    "heartbeat": heartbeat_rows,
}

# Columns holding unix seconds that become DateTime64 (microseconds for versions).
TIME_COLUMNS = {"received_at": "ms", "start_time": "ms", "end_time": "ms", "ts": "ms", "updated_at": "us"}
