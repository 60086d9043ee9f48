"""Runs in Jupyter: ``run`` renders as a card (status, key metrics, inline sparklines), and
``run.show()`` keeps that card live while the run is running.

Everything is read through :mod:`fleetlog.query`, so a notebook sees what the store
holds (a run just logged shows once the sink has written it). Rendering never raises:
a store that cannot be reached gives a card that says so.

The read side renders; the SDK's writer (``fleetlog.producers.run.Run``) knows nothing of
it.  The public ``fleetlog.Run`` takes the two notebook methods from :class:`NotebookViews`.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import numpy as np
import pandas as pd

from fleetlog import query as q
from fleetlog.config import Settings
from fleetlog.errors import FleetlogError
from fleetlog.events import RunStatus

__all__ = ["NotebookViews", "RunDetails", "card", "run_html", "show", "sparkline_svg"]

_COLORS = {
    RunStatus.RUNNING: "#1d4ed8",
    RunStatus.COMPLETED: "#15803d",
    RunStatus.FAILED: "#b91c1c",
    RunStatus.CANCELED: "#92400e",
}
_STYLE = "font-family:system-ui,sans-serif;font-size:13px;border:1px solid #e3e6eb;border-radius:8px;padding:10px 12px"


def sparkline_svg(values: Any, *, width: int = 140, height: int = 28, color: str = "#2563eb") -> str:
    """An inline SVG polyline of ``values`` (NaN breaks the line)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    if finite.sum() < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    xs = np.linspace(1, width - 1, arr.size)
    ys = height - 2 - (arr - lo) / ((hi - lo) or 1.0) * (height - 4)
    segments, current = [], []
    for x, y, ok in zip(xs, ys, finite, strict=True):
        if ok:
            current.append(f"{x:.1f},{y:.1f}")
        elif current:
            segments.append(current)
            current = []
    segments.append(current)
    stroke = f'fill="none" stroke="{color}" stroke-width="1.5"'
    lines = "".join(f'<polyline {stroke} points="{" ".join(seg)}"/>' for seg in segments if seg)
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">{lines}</svg>'


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _key_metrics(summary: pd.DataFrame, limit: int) -> list[str]:
    names = summary["metric"].drop_duplicates().tolist()
    first = ("train/", "eval/", "val/", "valid/", "test/")
    return sorted(names, key=lambda n: (n.startswith("sys/"), not n.startswith(first), n))[:limit]


def card(run_id: str, *, settings: Settings | None = None, metrics: int = 8) -> str:
    """HTML for one run: name, status, params, and its key metrics with last/min/max and a sparkline."""
    try:
        record = q.run(run_id, settings=settings)
        summary = q.summaries([run_id], settings=settings)
    except FleetlogError as exc:
        return f'<div style="{_STYLE}"><b>run {html.escape(run_id)}</b><br><i>{html.escape(str(exc))}</i></div>'
    status = record["status"]
    rows = []
    for name in _key_metrics(summary, metrics):
        series = q.metric(run_id, name, points=80, settings=settings)
        line = series.groupby("step")["value"].mean()
        s = summary[summary["metric"] == name].iloc[0]
        cells = [html.escape(name), sparkline_svg(line.to_numpy()), _fmt(s["last"]), _fmt(s["min"]), _fmt(s["max"])]
        rows.append("<tr>" + "".join(f'<td style="padding:2px 8px">{c}</td>' for c in cells) + "</tr>")
    params = ", ".join(f"{html.escape(str(k))}={_fmt(v)}" for k, v in list(record["params"].items())[:10])
    head = "".join(
        f'<th style="text-align:left;padding:2px 8px">{t}</th>' for t in ("metric", "", "last", "min", "max")
    )
    color = _COLORS.get(status, "#6b7280")
    return (
        f'<div style="{_STYLE}"><div><b>{html.escape(record["name"] or run_id)}</b> '
        f'<code style="color:#6b7280">{html.escape(run_id)}</code> '
        f'<span style="color:{color};font-weight:600">{html.escape(status)}</span> '
        f'<span style="color:#6b7280">{html.escape(record["experiment"])}</span></div>'
        + (f'<div style="color:#6b7280;margin:4px 0">{params}</div>' if params else "")
        + (f"<table>{head}{''.join(rows)}</table>" if rows else "<div><i>no metrics in the store yet</i></div>")
        + "</div>"
    )


def _settings_of(run: Any) -> Settings | None:
    experiment = getattr(run, "experiment", None)
    return getattr(experiment, "settings", None)


def run_html(run: Any) -> str:
    """``Run._repr_html_``: the run's card, read from the store its experiment writes to."""
    return card(run.id, settings=_settings_of(run))


def show(run: Any, *, refresh_seconds: float = 2.0, timeout_seconds: float = 24 * 3600) -> threading.Thread | None:
    """Display the run's card in a notebook and refresh it until the run ends (a daemon thread).

    Returns the refreshing thread (None when the run has already ended).
    """
    try:
        from IPython.display import HTML, display
    except ImportError:
        raise ImportError("run.show() displays in Jupyter: pip install ipython (or run it in a notebook)") from None
    run_id, settings = (run, None) if isinstance(run, str) else (run.id, _settings_of(run))
    handle = display(HTML(card(run_id, settings=settings)), display_id=True)
    if _ended(run_id, settings):
        return None
    stop = threading.Event()

    def refresh() -> None:
        waited = 0.0
        while not stop.wait(refresh_seconds) and waited < timeout_seconds:
            waited += refresh_seconds
            handle.update(HTML(card(run_id, settings=settings)))
            if _ended(run_id, settings):
                return

    thread = threading.Thread(target=refresh, name=f"fleetlog-show-{run_id}", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


def _ended(run_id: str, settings: Settings | None) -> bool:
    try:
        return q.run(run_id, settings=settings)["status"] in RunStatus.TERMINAL
    except FleetlogError:
        return False


class NotebookViews:
    """Jupyter views of a run with an ``id`` and an ``experiment``: mixed into the public ``fleetlog.Run``."""

    id: str

    def _repr_html_(self) -> str:
        """Jupyter: status, params and key metrics with sparklines (read from the store)."""
        return run_html(self)

    def show(self, refresh_seconds: float = 2.0) -> None:
        """Jupyter: display this run and keep the view updated while it runs."""
        show(self, refresh_seconds=refresh_seconds)


class RunDetails:
    """Azure's ``RunDetails(run).show()`` widget: the run's live card.

    Azure's widget polls its service; this one is the same card ``run.show()`` keeps live.
    """

    def __init__(self, run_instance: Any) -> None:
        if not hasattr(run_instance, "id"):
            raise TypeError(f"RunDetails needs a run (with an id), got {type(run_instance).__name__}")
        self.run = run_instance

    def show(self, refresh_seconds: float = 2.0) -> threading.Thread | None:
        """Display the card and refresh it until the run ends; the refreshing thread (None if ended)."""
        return show(self.run, refresh_seconds=refresh_seconds)

    def get_widget_data(self) -> str:
        """The card's HTML (Azure's widget data is its service's JSON: not kept here)."""
        return run_html(self.run)

    def _repr_html_(self) -> str:
        return run_html(self.run)
