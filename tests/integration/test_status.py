"""`fleetlog status --json`: what scripts read to see the stack and each stage's lag."""

from __future__ import annotations

import json
import subprocess
import sys

import fleetlog


def test_status_json_reports_components_topics_and_lag_per_stage(settings, stack, sdk_env):
    exp = fleetlog.Experiment("status", settings=settings)
    with exp.start_logging(telemetry=False) as run:
        run.log("x", 1.0)
    exp.close()
    env = {**sdk_env, "FLEETLOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap}
    out = subprocess.run(
        [sys.executable, "-m", "fleetlog", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["sink"]["state"] == "running" and report["sink"]["address"] == settings.store.http_url
    assert report["topics"][:2] == [settings.metrics_topic, settings.events_topic]
    lag = report["lag"]
    assert set(lag["fleetlog-sink"]) >= {settings.metrics_topic, settings.events_topic}
    assert all(isinstance(v, int) and v >= 0 for group in lag.values() for v in group.values())
    # nothing consumed by a processor in this test: its group lags by everything logged
    assert lag[f"{settings.topics.prefix}-processor"][settings.metrics_topic] >= 1
