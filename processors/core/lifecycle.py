"""A run's life from its events: status, heartbeats, alert rules, and its summary row.

Status comes from the SDK's ``run`` snapshots (the newest by send time wins, so
events that overtake each other cannot move a finished run back).  ``Lost`` is
the processors' own verdict -- no sign of life for longer than the timeout while
not finished -- and is undone by the next sign of life.

Alert rules travel as ``rows`` events for the ``alert_rules`` table: the sink
stores them like any derived row (so users see their rules) and the processors
read the same event to watch the metric.
"""

from __future__ import annotations

import math
from typing import Any

from fleetlog.processors.core.state import RunState

from fleetlog.events import Envelope, InvalidEvent, RunStatus

__all__ = ["ALERT_RULES_TABLE", "apply_event", "parse_alert_rules", "run_row"]

ALERT_RULES_TABLE = "alert_rules"
_RULE_COLUMNS = ("metric", "above", "below")


def _limit(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidEvent(f"alert rule {name!r} must be a finite number or null")
    return float(value)


def parse_alert_rules(env: Envelope) -> list[tuple[str, float | None, float | None]]:
    """``(metric, above, below)`` from an ``alert_rules`` rows event; ``InvalidEvent`` if malformed."""
    cols = env.body["columns"]
    try:
        # .tolist(): a typed column (array or dictionary) yields Python numbers and strings like a list does
        metrics, above, below = (c.tolist() if hasattr(c, "tolist") else c for c in (cols[k] for k in _RULE_COLUMNS))
    except KeyError as exc:
        raise InvalidEvent(f"alert_rules rows need column {exc.args[0]!r}") from None
    rules = []
    for m, a, b in zip(metrics, above, below, strict=True):
        if not isinstance(m, str) or not m:
            raise InvalidEvent("alert rule metric must be a non-empty string")
        rules.append((m, _limit(a, "above"), _limit(b, "below")))
    return rules


def is_alert_rules(env: Envelope) -> bool:
    return env.kind == "rows" and env.body.get("table") == ALERT_RULES_TABLE


def apply_event(run: RunState, env: Envelope) -> None:
    """Fold one non-metrics event into the run (heartbeat windows are the caller's)."""
    if env.kind == "run":
        body = env.body
        if env.sent_at >= run.status_sent_at and isinstance(body.get("status"), str):
            run.status = body["status"]
            run.status_sent_at = env.sent_at
            run.start_time = _seconds(body.get("start"), run.start_time)
            run.end_time = _seconds(body.get("end"), run.end_time)
        run.world_size = max(run.world_size, env.source.world_size)
    elif env.kind == "heartbeat":
        run.last_heartbeat = max(run.last_heartbeat, _seconds(env.body.get("time"), env.sent_at))
    elif is_alert_rules(env):
        for metric, above, below in parse_alert_rules(env):
            if above is None and below is None:
                run.rules.pop(metric, None)
            else:
                run.rules[metric] = [above, below]


def _seconds(value: Any, default: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e11
    return float(value) if ok else default


def run_row(run_id: str, run: RunState, now: float) -> dict[str, Any]:
    """The run's summary row; ``version`` is the run's emission counter."""
    start = run.start_time or (run.first_point_ms / 1000.0 if run.first_point_ms else now)
    finished = run.status in RunStatus.TERMINAL
    end = (run.end_time or now) if finished else None
    last_activity = max(run.last_heartbeat, run.last_point_ms / 1000.0)
    return {
        "run_id": run_id,
        "project": run.project,
        "experiment": run.experiment,
        "status": RunStatus.LOST if run.lost else (run.status or RunStatus.RUNNING),
        "start_time": start,
        "end_time": end,
        "duration_seconds": max(0.0, (end if end is not None else max(last_activity, start)) - start),
        "last_heartbeat": run.last_heartbeat or None,
        "last_point_time": run.last_point_ms / 1000.0 if run.last_point_ms else None,
        "points": run.points,
        "ranks": len(run.ranks),
        "world_size": run.world_size,
        "late_points": run.late_points,
        "updated_at": now,
        "version": run.revision,
    }
