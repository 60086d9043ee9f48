"""Metric series: one metric for a chart (at a resolution that fits it), names, and every raw point.

``metric`` plans the read in :mod:`fleetlog.query.series_plan` (raw, rollup buckets, or
server-side downsampling) and says what it used in ``df.attrs["resolution"]``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pandas as pd

from fleetlog.config import Settings
from fleetlog.query.client import df, reading, tables_present
from fleetlog.query.series_plan import Resolution, nice_bucket, plan_resolution, read_series
from fleetlog.query.sql import as_list

__all__ = ["Resolution", "metric", "metric_names", "nice_bucket", "points_stream"]


def metric_names(run_ids: str | Sequence[str], *, settings: Settings | None = None) -> list[str]:
    """The metric names the runs logged, sorted."""
    frame = df(
        settings,
        "SELECT DISTINCT metric FROM metric_points WHERE run_id IN {ids:Array(String)} ORDER BY metric",
        {"ids": as_list(run_ids)},
    )
    return frame["metric"].tolist()


def metric(
    run_ids: str | Sequence[str],
    name: str,
    *,
    resolution: str | int = "auto",
    step_range: tuple[int | None, int | None] | None = None,
    time_range: tuple[Any, Any] | None = None,
    points: int = 1500,
    rank: int | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """One metric's series for one or more runs: ``run_id, rank, step, value, min, max, count, ts``.

    ``resolution="auto"`` reads raw points when a series has at most ``points`` of them in
    the range, else buckets of steps sized for about ``points`` per series: from the
    coarsest rollup table that is fine enough, or downsampled on the server. ``"raw"``
    forces raw points; an int forces that bucket size in steps. In a bucket, ``value``
    is the mean, ``min``/``max`` the envelope, ``step`` the first step, ``last`` the
    value at the last step (NaN/inf are left out and counted in ``nonfinite``).
    ``df.attrs["resolution"]`` says which source and bucket were used.
    """
    settings = settings or Settings.from_env()
    ids = as_list(run_ids) or []
    if not ids:
        raise ValueError("metric() needs at least one run id")
    query = functools.partial(df, settings)
    plan = plan_resolution(
        query,
        tables_present(settings),
        ids,
        name,
        resolution=resolution,
        step_range=step_range,
        time_range=time_range,
        points=points,
        rank=rank,
    )
    frame = read_series(query, plan)
    frame.attrs["resolution"] = plan.resolution.as_dict()
    return frame


def points_stream(
    run_id: str, metrics: Iterable[str] | None = None, *, settings: Settings | None = None
) -> Iterator[Any]:
    """Every raw point of a run as Arrow record batches (``metric, rank, step, ts, value``), streamed."""
    settings = settings or Settings.from_env()
    bound: dict[str, Any] = {"r": run_id}
    cond = ""
    if metrics is not None:
        bound["names"] = list(metrics)
        cond = " AND metric IN {names:Array(String)}"
    query = (
        "SELECT toString(metric) AS metric, rank, step, ts, value FROM metric_points "
        f"WHERE run_id = {{r:String}}{cond} ORDER BY metric, rank, step"
    )
    with reading(settings) as reader, reader.query_arrow_stream(query, parameters=bound, use_strings=True) as stream:
        yield from stream
