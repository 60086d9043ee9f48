"""Hostile names and values: stored verbatim or refused with a clear error; no SQL injection anywhere."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.config import mask_url

HOSTILE = [
    "quote ' and \" double",
    "back\\slash \\' \\\\",
    "new\nline\r\ttab",
    "unicode ✓ ñ 日本語 🚀",
    "'; DROP TABLE metric_points; --",
    "{r:String} $1 %s ?",
    "x' OR '1'='1",
    "\x00nul",
]


def test_hostile_names_and_values_are_stored_verbatim(settings, stack):
    s = settings.replace(telemetry_interval_seconds=0)
    exp = fleetlog.Experiment("hostile ' exp", settings=s)
    big = "€" * 300_000  # ~900 KB of UTF-8, under the 1 MiB value limit
    with exp.start_logging(display_name=HOSTILE[4]) as run:
        for i, name in enumerate(HOSTILE):
            run.log(name, float(i))
        run.log("nan", math.nan)
        run.log("inf", math.inf)
        run.set_tags({name: name for name in HOSTILE})
        run.log_params({"big": big, "nested": {"a": {"b": {"c": HOSTILE[0]}}}})
        run.log_list("list " + HOSTILE[1], HOSTILE)

    def landed():
        metrics = run.get_metrics()
        for i, name in enumerate(HOSTILE):
            assert metrics[name] == float(i), name
        assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf
        assert metrics["list " + HOSTILE[1]] == HOSTILE
        assert run.get_tags() == {name: name for name in HOSTILE}
        assert run.get_params() == {"big": big, "nested.a.b.c": HOSTILE[0]}
        assert run.get_details()["displayName"] == HOSTILE[4]

    eventually(landed)
    tables = query.sql(
        "SELECT count() AS n FROM system.tables WHERE database = 'fleetlog' AND name = 'metric_points'", settings=s
    )
    assert tables["n"].iloc[0] == 1  # still there
    exp.close()


def test_limits_are_refused_at_the_call_site_with_clear_errors(settings):
    exp = fleetlog.Experiment("limits", settings=settings.replace(mode="offline"))
    run = exp.start_logging(telemetry=False)
    with pytest.raises(ValueError, match=r"1\.\.1024 bytes"):
        run.log("m" * 2000, 1.0)
    with pytest.raises(ValueError, match="the limit is 1,048,576"):
        run.tag("t", "x" * (1 << 20) + "y")
    with pytest.raises(ValueError, match="nest deeper"):
        deep: dict = {}
        node = deep
        for _ in range(100):
            node["k"] = {}
            node = node["k"]
        run.log_params(deep)
    with pytest.raises(ValueError, match="message limit"):
        run.log_table("huge", {"x": list(range(300_000)), "y": [0.5] * 300_000})
    with pytest.raises(TypeError, match=r"needs a real number .* or a string, got bytes"):
        run.log("x", b"1.0")  # a str is a string metric, as on Azure ML; bytes are neither
    run.complete()
    exp.close()


def test_query_layer_binds_every_value_no_injection(settings, stack):
    s = settings.replace(telemetry_interval_seconds=0)
    exp = fleetlog.Experiment("inject", settings=s)
    with exp.start_logging(run_id="victim") as run:
        run.log("loss", 1.0)

    def landed():
        assert query.sql("SELECT count() AS n FROM metric_points", settings=s)["n"].iloc[0] == 1
        assert run.get_status() == "Completed"

    eventually(landed)
    for attack in HOSTILE:
        assert (
            query.sql("SELECT count() AS n FROM runs WHERE run_id = {r:String}", {"r": attack}, settings=s)["n"].iloc[0]
            == 0
        )
        assert query.runs(experiment=attack, settings=s).empty
        assert query.runs(tags={attack: attack}, settings=s).empty
        assert query.metric([attack], attack, settings=s).empty
        assert query.metric(["victim", attack], "loss", resolution="raw", settings=s)["value"].tolist() == [1.0]
    with pytest.raises(ValueError):
        query.runs(order_by="start_time; DROP TABLE runs", settings=s)
    still = query.sql("SELECT count() AS n FROM runs FINAL WHERE run_id = 'victim'", settings=s)
    assert still["n"].iloc[0] == 1
    exp.close()


def test_passwords_never_appear_in_logs_settings_or_errors(settings, tmp_path):
    secret = "s3cr3t-pa55"
    url = f"http://writer:{secret}@127.0.0.1:1/fleetlog"
    s = settings.replace(clickhouse_url=url, kafka_sasl_password=secret)
    assert secret not in repr(s) and secret not in mask_url(url)
    with pytest.raises(fleetlog.StoreUnavailable) as err:
        query.sql("SELECT 1", settings=s)
    assert secret not in str(err.value)
    env = {
        "FLEETLOG_HOME": str(tmp_path),
        "FLEETLOG_CLICKHOUSE_URL": url,
        "FLEETLOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "FLEETLOG_TOPIC_PREFIX": settings.topics.prefix,
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "fleetlog", "sink"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0  # the server does not exist
    assert secret not in out.stdout + out.stderr
    status = subprocess.run(
        [sys.executable, "-m", "fleetlog", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert secret not in status.stdout + status.stderr


def test_a_50_mb_image_goes_to_the_artifact_store_not_through_kafka(settings, stack, tmp_path):
    s = settings.replace(telemetry_interval_seconds=0)
    image = tmp_path / "huge.png"
    with open(image, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(bytes(range(256)) * (50 * 4096))  # 50 MiB of pixels, as far as we care
    exp = fleetlog.Experiment("huge-image", settings=s)
    with exp.start_logging() as run:
        run.log_image("huge", path=image)

    def landed():
        row = query.sql(
            "SELECT size, length(inline) AS inline, sha256, uri FROM run_artifacts FINAL WHERE run_id = {r:String}",
            {"r": run.id},
            settings=s,
        )
        assert len(row) == 1
        return row.iloc[0]

    row = eventually(landed)
    assert row["size"] == image.stat().st_size and row["inline"] == 0
    assert run.get_metrics()["huge"] == row["uri"]
    exp.close()
