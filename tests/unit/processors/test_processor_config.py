"""Processor settings are parsed once, with the variable's name in every error."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetlog.processors.core.config import ProcessorConfig, parse_positive_ints

from fleetlog.config import Settings


def test_settings_become_a_checked_config(tmp_path: Path):
    env = {
        "FLEETLOG_ROLLUP_RESOLUTIONS": "100, 10,100",
        "FLEETLOG_SPIKE_METRICS": "loss|ppl",
        "FLEETLOG_LOST_RUN_TIMEOUT_SECONDS": "5",
    }
    cfg = ProcessorConfig.from_settings(Settings.from_env(env, home=tmp_path))
    assert cfg.resolutions == (10, 100) and cfg.lost_after_seconds == 5.0
    assert cfg.spike_metrics.search("val/ppl") and not cfg.spike_metrics.search("acc")
    assert cfg.rank_metrics.search("train/loss") and cfg.rank_metrics.search("perf/samples_per_sec")
    assert not cfg.rank_metrics.search("layers/03/grad_norm")  # equal on every rank after all-reduce
    assert cfg.gpu_metrics.search("sys/gpu0/utilization_percent")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLEETLOG_ROLLUP_RESOLUTIONS": "10,x"}, "FLEETLOG_ROLLUP_RESOLUTIONS"),
        ({"FLEETLOG_FLEET_WINDOWS_SECONDS": "0"}, "FLEETLOG_FLEET_WINDOWS_SECONDS"),
        ({"FLEETLOG_SPIKE_METRICS": "("}, "FLEETLOG_SPIKE_METRICS"),
        ({"FLEETLOG_SPIKE_FACTOR": "1"}, "factors must be > 1"),
        ({"FLEETLOG_RANK_TIMEOUT_SECONDS": "0"}, "must be positive"),
    ],
)
def test_bad_values_name_what_to_fix(tmp_path: Path, env, message):
    with pytest.raises(ValueError, match=message):
        ProcessorConfig.from_settings(Settings.from_env(env, home=tmp_path))


def test_resolution_lists_are_sorted_and_unique():
    assert parse_positive_ints("1000,10,100,10", "X") == (10, 100, 1000)
