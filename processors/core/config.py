"""What the processors compute, as one frozen value parsed and checked once.

``Settings`` carries the raw ``FLEETLOG_*`` values (strings for lists and
patterns); this object is what the pure core reads, so a bad value fails at start
with the variable's name instead of deep inside a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleetlog.config import ConfigError
from fleetlog.config import ProcessorConfig as ProcessorSettings

# The declared defaults (fleetlog.config): defined there once, parsed here.
_DEFAULTS = ProcessorSettings()

__all__ = ["ProcessorConfig", "parse_positive_ints"]


def parse_positive_ints(raw: str, variable: str) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``: sorted, unique, every one > 0."""
    try:
        values = sorted({int(x) for x in raw.replace(" ", "").split(",") if x})
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} must be comma-separated positive integers") from None
    if not values or values[0] <= 0:
        raise ConfigError(f"{variable}={raw!r} must be comma-separated positive integers")
    return tuple(values)


def _pattern(raw: str, variable: str) -> re.Pattern[str]:
    try:
        return re.compile(raw)
    except re.error as exc:
        raise ConfigError(f"{variable}={raw!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class ProcessorConfig:
    """Knobs of the stream processors; see the README's "Stream processors" section."""

    resolutions: tuple[int, ...] = parse_positive_ints(_DEFAULTS.rollup_resolutions, "FLEETLOG_ROLLUP_RESOLUTIONS")
    retained_buckets: int = _DEFAULTS.rollup_retained_buckets
    lost_after_seconds: float = _DEFAULTS.lost_run_timeout_seconds
    rank_timeout_seconds: float = _DEFAULTS.rank_timeout_seconds
    straggler_factor: float = _DEFAULTS.straggler_factor
    straggler_patience: int = _DEFAULTS.straggler_patience
    spike_factor: float = _DEFAULTS.spike_factor
    spike_window: int = _DEFAULTS.spike_window_points
    spike_metrics: re.Pattern[str] = re.compile(_DEFAULTS.spike_metrics)
    rank_metrics: re.Pattern[str] = re.compile(_DEFAULTS.rank_metrics)
    gpu_metrics: re.Pattern[str] = re.compile(_DEFAULTS.gpu_metrics)
    window_seconds: tuple[int, ...] = parse_positive_ints(
        _DEFAULTS.fleet_windows_seconds, "FLEETLOG_FLEET_WINDOWS_SECONDS"
    )
    state_retention_seconds: float = _DEFAULTS.state_retention_seconds

    def __post_init__(self) -> None:
        if self.retained_buckets < 0 or self.straggler_patience < 1 or self.spike_window < 3:
            raise ConfigError("retained buckets must be >= 0, straggler patience >= 1, spike window >= 3")
        if min(self.lost_after_seconds, self.rank_timeout_seconds, self.state_retention_seconds) <= 0:
            raise ConfigError("timeouts and retention must be positive")
        if self.straggler_factor <= 1 or self.spike_factor <= 1:
            raise ConfigError("straggler and spike factors must be > 1")

    @classmethod
    def from_settings(cls, settings: Any) -> ProcessorConfig:
        """Parse the processor's fields of a ``fleetlog.config.Settings``."""
        p = settings.processor
        return cls(
            resolutions=parse_positive_ints(p.rollup_resolutions, "FLEETLOG_ROLLUP_RESOLUTIONS"),
            retained_buckets=p.rollup_retained_buckets,
            lost_after_seconds=p.lost_run_timeout_seconds,
            rank_timeout_seconds=p.rank_timeout_seconds,
            straggler_factor=p.straggler_factor,
            straggler_patience=p.straggler_patience,
            spike_factor=p.spike_factor,
            spike_window=p.spike_window_points,
            spike_metrics=_pattern(p.spike_metrics, "FLEETLOG_SPIKE_METRICS"),
            rank_metrics=_pattern(p.rank_metrics, "FLEETLOG_RANK_METRICS"),
            gpu_metrics=_pattern(p.gpu_metrics, "FLEETLOG_GPU_METRICS"),
            window_seconds=parse_positive_ints(p.fleet_windows_seconds, "FLEETLOG_FLEET_WINDOWS_SECONDS"),
            state_retention_seconds=p.state_retention_seconds,
        )
