"""Settings: one precedence rule, per-stage objects, declared variables, loud mistakes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fleetlog.config import (
    ConfigError,
    ConfigWarning,
    KafkaConfig,
    Settings,
    SinkConfig,
    declared,
    mask_url,
)
from fleetlog.config._declare import NAMED_UNITS, var_of


def test_precedence_defaults_env_arguments(tmp_path):
    env = {"FLEETLOG_HOME": str(tmp_path), "FLEETLOG_KAFKA_BOOTSTRAP": "k:1", "FLEETLOG_HTTP_PORT": "9000"}
    s = Settings.from_env(env, kafka_bootstrap="k:2", http_host=None)
    assert s.home == tmp_path and s.kafka.bootstrap == "k:2" and s.store.http_port == 9000
    assert s.store.http_host == "127.0.0.1"
    assert s.store.url == f"chdb://{tmp_path / 'store'}" and s.store.is_embedded


def test_overrides_may_be_flat_nested_or_whole_groups(tmp_path):
    env = {"FLEETLOG_SINK_BATCH_ROWS": "7", "FLEETLOG_SINK_BATCH_SECONDS": "3"}
    flat = Settings.from_env(env, home=tmp_path, sink_batch_seconds=1)
    nested = Settings.from_env(env, home=tmp_path, sink={"batch_seconds": 1})
    assert flat == nested and flat.sink.batch_seconds == 1.0 and flat.sink.batch_rows == 7
    whole = Settings.from_env(env, home=tmp_path, sink=SinkConfig(batch_rows=5))
    assert whole.sink == SinkConfig(batch_rows=5)  # a whole group wins over the environment for that group
    assert flat.replace(ui_token="t", kafka={"bootstrap": "b:1"}).kafka.bootstrap == "b:1"
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.from_env({}, kafka_bootstrp="x")
    with pytest.raises(TypeError, match=r"unknown setting sink\.rows"):
        Settings.from_env({}, sink={"rows": 1})


def test_configs_are_frozen_and_keyword_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().sink.batch_rows = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        KafkaConfig("h:1")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"FLEETLOG_HTTP_PORT": "abc"}, {}, r"FLEETLOG_HTTP_PORT='abc' is not a number"),
        ({"FLEETLOG_SINK_BATCH_ROWS": "1.5"}, {}, r"FLEETLOG_SINK_BATCH_ROWS='1.5'.*whole number of rows"),
        ({"FLEETLOG_MODE": "sometimes"}, {}, r"FLEETLOG_MODE='sometimes'.*one of online, offline"),
        ({"FLEETLOG_FLUSH_INTERVAL_SECONDS": "0"}, {}, r"FLEETLOG_FLUSH_INTERVAL_SECONDS=0.0.*positive"),
        ({}, {"spool_max_bytes": -1}, r"FLEETLOG_SPOOL_MAX_BYTES=-1.*non-negative"),
        ({}, {"http_port": "8123"}, r"FLEETLOG_HTTP_PORT='8123'"),
        ({}, {"block_timeout_seconds": float("inf")}, r"FLEETLOG_BLOCK_TIMEOUT_SECONDS=inf"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(env, overrides, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env, **overrides)


def test_old_unit_less_names_still_work_with_a_deprecation_warning(tmp_path):
    env = {"FLEETLOG_FLUSH_INTERVAL": "0.7", "FLEETLOG_CLICKHOUSE": "http://h:1/db", "FLEETLOG_KAFKA": "old:1"}
    env["FLEETLOG_KAFKA_BOOTSTRAP"] = "new:1"  # the new name wins when both are set
    with pytest.warns(
        DeprecationWarning, match="FLEETLOG_FLUSH_INTERVAL is deprecated: set FLEETLOG_FLUSH_INTERVAL_SECONDS"
    ):
        s = Settings.from_env(env, home=tmp_path)
    assert (s.sdk.flush_interval_seconds, s.store.url, s.kafka.bootstrap) == (0.7, "http://h:1/db", "new:1")
    child = s.child_env(base=env)
    assert "FLEETLOG_KAFKA" not in child and child["FLEETLOG_FLUSH_INTERVAL_SECONDS"] == "0.7"


def test_unknown_variables_warn_once_with_a_did_you_mean():
    env = {"FLEETLOG_SINK_BACH_ROWS_T1": "3", "FLEETLOG_RUN_ID": "r-1", "FLEETLOG_SCREENSHOTS": "x"}
    with pytest.warns(ConfigWarning, match="did you mean FLEETLOG_SINK_BATCH_ROWS") as caught:
        Settings.from_env(env)
    assert len(caught) == 1  # hand-offs and test hooks are known, not settings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_env(env)  # once per process


def test_every_setting_declares_a_prefixed_unique_variable_with_its_unit():
    vars_ = [var_of(f) for _, f in declared().values()]
    names = [v.env for v in vars_] + [v.old_env for v in vars_ if v.old_env]
    assert len(names) == len(set(names)) and all(n.startswith("FLEETLOG_") for n in names)
    for v in vars_:
        assert v.doc, v.env
        if v.unit in NAMED_UNITS:
            assert v.env.endswith("_" + v.unit.upper()), f"{v.env} must end with its unit, _{v.unit.upper()}"


def test_child_env_round_trips_and_keeps_only_the_named_secrets(tmp_path):
    s = Settings.build(home=tmp_path, topic_prefix="t", ui_token="tok", store_writer_password="w", sink_batch_rows=9)
    assert Settings.from_env(s.to_env()) == s
    env = s.child_env(secrets=["store_writer_password"], base={"FLEETLOG_UI_TOKEN": "leak", "PATH": "/bin"})
    assert env["FLEETLOG_STORE_WRITER_PASSWORD"] == "w" and "FLEETLOG_UI_TOKEN" not in env and env["PATH"] == "/bin"
    with pytest.raises(ValueError, match="not secret"):
        s.child_env(secrets=["topic_prefix"])


def test_topics_follow_the_prefix():
    s = Settings.build(topic_prefix="t1", home=Path("/x"))
    assert (s.metrics_topic, s.events_topic, s.dead_letter_topic) == ("t1.metrics", "t1.events", "t1.dead-letters")


def test_kafka_durations_become_milliseconds_at_one_boundary():
    kafka = KafkaConfig(bootstrap="b:1", request_timeout_seconds=2.5)
    assert kafka.client_kwargs() == {"bootstrap_servers": "b:1", "request_timeout_ms": 2500}
    assert kafka.client_kwargs(request_timeout_seconds=5)["request_timeout_ms"] == 5000


def test_passwords_are_masked():
    assert mask_url("http://writer:s3cret@host:8123/db") == "http://writer:***@host:8123/db"
    assert "s3cret" not in mask_url("https://u:s3cret@h/db")
    assert mask_url("chdb:///var/x") == "chdb:///var/x"
    s = Settings.build(kafka_sasl_password="k-secret", clickhouse_url="http://u:u-secret@h/db", ui_token="t-secret")
    assert not any(secret in repr(s) for secret in ("k-secret", "u-secret", "t-secret"))


def test_the_configuration_module_runs_as_a_script():
    out = subprocess.run([sys.executable, "-m", "fleetlog.config", "--markdown"], capture_output=True, text=True)
    assert out.returncode == 0 and "## SinkConfig (`settings.sink`)" in out.stdout
