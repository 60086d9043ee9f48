"""Point alerts over whole batches: NaN/Inf, declared thresholds, loss spikes.

An alert fires once per *episode*: on the first point of a series that meets
the condition after one that did not.  Whether the previous point met it is kept
per series between batches (``flags``), so a NaN streak split across batches is
still one alert, and a series that recovers re-arms.

A spike is a finite value above ``factor`` times the median of the ``window``
finite values before it in the same series (only where that median is
positive, so a metric around zero does not fire on noise).  The history is
carried in state; a series needs a full window before it can spike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["ABOVE", "BELOW", "NONFINITE", "RULES", "SPIKE", "PointAlerts", "detect"]

NONFINITE, ABOVE, BELOW, SPIKE = 1, 2, 4, 8
RULES = {NONFINITE: "nonfinite", ABOVE: "above", BELOW: "below", SPIKE: "spike"}


@dataclass(frozen=True)
class PointAlerts:
    """Alerts as indices into the batch's points, plus every series' new flags and histories."""

    index: np.ndarray
    rule: np.ndarray
    threshold: np.ndarray
    flags: np.ndarray
    history: list[np.ndarray]


def _first_in_series(series: np.ndarray) -> np.ndarray:
    first = np.ones(len(series), bool)
    first[1:] = series[1:] != series[:-1]
    return first


def _episodes(series: np.ndarray, hit: np.ndarray, before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where episodes start, and per series whether its last point was in one (``before`` if no points)."""
    prev = np.empty_like(hit)
    prev[1:] = hit[:-1]
    first = _first_in_series(series)
    prev[first] = before[series[first]]
    last = np.ones(len(series), bool)
    last[:-1] = series[1:] != series[:-1]
    after = before.copy()
    after[series[last]] = hit[last]
    return hit & ~prev, after


def _spikes(
    series: np.ndarray, value: np.ndarray, history: list[np.ndarray], enabled: np.ndarray, window: int, factor: float
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Spike mask and limit (factor x median) per point, and each series' last ``window`` finite values."""
    hit = np.zeros(len(value), bool)
    limit = np.full(len(value), np.nan)
    new_history = list(history)
    candidates = np.isfinite(value) & enabled[series]
    if not candidates.any():
        return hit, limit, new_history
    idx = np.flatnonzero(candidates)
    bounds = np.flatnonzero(_first_in_series(series[idx]))
    pieces, positions, valid = [], [], []
    offset = 0
    for lo, hi in zip(bounds, np.append(bounds[1:], len(idx)), strict=True):
        s = int(series[idx[lo]])
        old = history[s]
        combined = np.concatenate([old, value[idx[lo:hi]]])
        pos = offset + len(old) + np.arange(hi - lo)
        pieces.append(combined)
        positions.append(pos)
        valid.append(pos - offset >= window)
        new_history[s] = combined[-window:]
        offset += len(combined)
    flat = np.concatenate(pieces)
    pos = np.concatenate(positions)
    ok = np.concatenate(valid)
    if ok.any() and len(flat) >= window:
        median = np.median(sliding_window_view(flat, window)[pos[ok] - window], axis=1)
        limit[idx[ok]] = factor * median
        hit[idx[ok]] = (median > 0) & (flat[pos[ok]] > limit[idx[ok]])
    return hit, limit, new_history


def detect(
    series: np.ndarray,
    value: np.ndarray,
    *,
    flags: np.ndarray,
    above: np.ndarray,
    below: np.ndarray,
    spike_enabled: np.ndarray,
    history: list[np.ndarray],
    spike_window: int,
    spike_factor: float,
) -> PointAlerts:
    """Alerts for points sorted by (series, step); per-series inputs are indexed by series id."""
    spike, spike_limit, new_history = _spikes(series, value, history, spike_enabled, spike_window, spike_factor)
    with np.errstate(invalid="ignore"):
        conditions = {
            NONFINITE: (~np.isfinite(value), np.full(len(value), np.nan)),
            ABOVE: (value > above[series], above[series]),
            BELOW: (value < below[series], below[series]),
            SPIKE: (spike, spike_limit),
        }
    new_flags = flags.copy()
    index, rule, threshold = [], [], []
    for bit, (hit, limit) in conditions.items():
        starts, after = _episodes(series, hit, (flags & bit) > 0)
        new_flags = np.where(after, new_flags | bit, new_flags & ~bit)
        at = np.flatnonzero(starts)
        index.append(at)
        rule.append(np.full(len(at), bit))
        threshold.append(limit[at])
    return PointAlerts(
        index=np.concatenate(index),
        rule=np.concatenate(rule),
        threshold=np.concatenate(threshold).astype(np.float64),
        flags=new_flags,
        history=new_history,
    )
