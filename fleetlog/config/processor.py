"""The stream processors' settings (see :mod:`fleetlog.config.stages` for the conventions)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetlog.config._declare import StageConfig, setting

__all__ = ["DEFAULT_RANK_METRICS", "ProcessorConfig"]

# Metrics that differ between data-parallel ranks (each sees its own batches); what all-reduce makes
# equal on every rank (gradient norms, learning rate) would only double the stored rows.
DEFAULT_RANK_METRICS = "loss|acc|throughput|per_sec|step_time"


@dataclass(frozen=True, kw_only=True, repr=False)
class ProcessorConfig(StageConfig):
    """The stream processors: rollups, run state, cross-rank and fleet views, alerts.

    Lists and patterns stay strings here; ``processors.core.config`` parses them once.
    """

    rollup_resolutions: str = setting(
        "10,100,1000,10000", env="FLEETLOG_ROLLUP_RESOLUTIONS", doc="steps per rollup bucket, comma separated"
    )
    rollup_retained_buckets: int = setting(
        2, env="FLEETLOG_ROLLUP_RETAINED_BUCKETS", unit="buckets", doc="closed buckets kept for late points"
    )
    lost_run_timeout_seconds: float = setting(
        120.0,
        env="FLEETLOG_LOST_RUN_TIMEOUT_SECONDS",
        old_env="FLEETLOG_LOST_RUN_TIMEOUT",
        unit="seconds",
        positive=True,
        doc="time without heartbeat or data before a run is Lost",
    )
    rank_timeout_seconds: float = setting(
        30.0,
        env="FLEETLOG_RANK_TIMEOUT_SECONDS",
        old_env="FLEETLOG_RANK_TIMEOUT",
        unit="seconds",
        positive=True,
        doc="time a step waits for every rank's value",
    )
    straggler_factor: float = setting(
        1.5, env="FLEETLOG_STRAGGLER_FACTOR", positive=True, doc="step time over the ranks' median that is slow"
    )
    straggler_patience: int = setting(
        3,
        env="FLEETLOG_STRAGGLER_PATIENCE",
        unit="batches",
        positive=True,
        doc="slow batches in a row before a straggler alert",
    )
    spike_factor: float = setting(
        3.0, env="FLEETLOG_SPIKE_FACTOR", positive=True, doc="a spike is a value above this times the rolling median"
    )
    spike_window_points: int = setting(
        20,
        env="FLEETLOG_SPIKE_WINDOW_POINTS",
        old_env="FLEETLOG_SPIKE_WINDOW",
        unit="points",
        positive=True,
        doc="points in the spike detector's rolling median",
    )
    spike_metrics: str = setting("loss", env="FLEETLOG_SPIKE_METRICS", doc="regex of metric names watched for spikes")
    rank_metrics: str = setting(
        DEFAULT_RANK_METRICS,
        env="FLEETLOG_RANK_METRICS",
        doc="regex of metric names aggregated across ranks (`.` for every metric)",
    )
    gpu_metrics: str = setting(
        r"gpu\d*[_./]?util", env="FLEETLOG_GPU_METRICS", doc="regex of metric names averaged as GPU utilisation"
    )
    fleet_windows_seconds: str = setting(
        "10,60",
        env="FLEETLOG_FLEET_WINDOWS_SECONDS",
        old_env="FLEETLOG_FLEET_WINDOWS",
        unit="seconds",
        doc="fleet window lengths, comma separated",
    )
    batch_records: int = setting(
        64,
        env="FLEETLOG_PROCESSOR_BATCH_RECORDS",
        unit="records",
        positive=True,
        doc="Kafka records per processor batch, at most",
    )
    batch_seconds: float = setting(
        0.5,
        env="FLEETLOG_PROCESSOR_BATCH_SECONDS",
        unit="seconds",
        positive=True,
        doc="longest a processor batch waits to fill",
    )
    state_retention_seconds: float = setting(
        3600.0,
        env="FLEETLOG_PROCESSOR_STATE_RETENTION_SECONDS",
        old_env="FLEETLOG_PROCESSOR_STATE_RETENTION",
        unit="seconds",
        doc="time a finished run's state is kept for late data",
    )
