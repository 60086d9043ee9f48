"""What the processors compute, as one frozen value parsed and checked once.

``Settings`` carries the raw ``FLEETLOG_*`` values (strings for lists and
patterns); this object is what the pure core reads, so a bad value fails at start
with the variable's name instead of deep inside a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleetlog.config import DEFAULT_RANK_METRICS

__all__ = ["ProcessorConfig", "parse_positive_ints"]


def parse_positive_ints(raw: str, variable: str) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``: sorted, unique, every one > 0."""
    try:
        values = sorted({int(x) for x in raw.replace(" ", "").split(",") if x})
    except ValueError:
        raise ValueError(f"{variable}={raw!r} must be comma-separated positive integers") from None
    if not values or values[0] <= 0:
        raise ValueError(f"{variable}={raw!r} must be comma-separated positive integers")
    return tuple(values)


def _pattern(raw: str, variable: str) -> re.Pattern[str]:
    try:
        return re.compile(raw)
    except re.error as exc:
        raise ValueError(f"{variable}={raw!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class ProcessorConfig:
    """Knobs of the stream processors; see the README's "Stream processors" section."""

    resolutions: tuple[int, ...] = (10, 100, 1000, 10000)
    retained_buckets: int = 2
    lost_after_seconds: float = 120.0
    rank_timeout_seconds: float = 30.0
    straggler_factor: float = 1.5
    straggler_patience: int = 3
    spike_factor: float = 3.0
    spike_window: int = 20
    spike_metrics: re.Pattern[str] = re.compile("loss")
    rank_metrics: re.Pattern[str] = re.compile(DEFAULT_RANK_METRICS)
    gpu_metrics: re.Pattern[str] = re.compile(r"gpu\d*[_./]?util")
    window_seconds: tuple[int, ...] = (10, 60)
    state_retention_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.retained_buckets < 0 or self.straggler_patience < 1 or self.spike_window < 3:
            raise ValueError("retained buckets must be >= 0, straggler patience >= 1, spike window >= 3")
        if min(self.lost_after_seconds, self.rank_timeout_seconds, self.state_retention_seconds) <= 0:
            raise ValueError("timeouts and retention must be positive")
        if self.straggler_factor <= 1 or self.spike_factor <= 1:
            raise ValueError("straggler and spike factors must be > 1")

    @classmethod
    def from_settings(cls, settings: Any) -> ProcessorConfig:
        """Parse the processor's fields of a ``fleetlog.config.Settings``."""
        s = settings
        return cls(
            resolutions=parse_positive_ints(s.rollup_resolutions, "FLEETLOG_ROLLUP_RESOLUTIONS"),
            retained_buckets=s.rollup_retained_buckets,
            lost_after_seconds=s.lost_run_timeout_seconds,
            rank_timeout_seconds=s.rank_timeout_seconds,
            straggler_factor=s.straggler_factor,
            straggler_patience=s.straggler_patience,
            spike_factor=s.spike_factor,
            spike_window=s.spike_window_points,
            spike_metrics=_pattern(s.spike_metrics, "FLEETLOG_SPIKE_METRICS"),
            rank_metrics=_pattern(s.rank_metrics, "FLEETLOG_RANK_METRICS"),
            gpu_metrics=_pattern(s.gpu_metrics, "FLEETLOG_GPU_METRICS"),
            window_seconds=parse_positive_ints(s.fleet_windows, "FLEETLOG_FLEET_WINDOWS"),
            state_retention_seconds=s.processor_state_retention_seconds,
        )
