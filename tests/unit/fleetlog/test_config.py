from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.config import Settings, mask_url


def test_precedence_defaults_env_arguments(tmp_path):
    env = {"FLEETLOG_HOME": str(tmp_path), "FLEETLOG_KAFKA": "k:1", "FLEETLOG_HTTP_PORT": "9000"}
    s = Settings.from_env(env, kafka_bootstrap="k:2", http_host=None)
    assert s.home == tmp_path and s.kafka_bootstrap == "k:2" and s.http_port == 9000
    assert s.http_host == "127.0.0.1"
    assert s.clickhouse_url == f"chdb://{tmp_path / 'store'}" and s.is_embedded_store


def test_unknown_override_and_bad_values_are_rejected():
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.from_env({}, kafka="x")
    with pytest.raises(ValueError, match="FLEETLOG_HTTP_PORT"):
        Settings.from_env({"FLEETLOG_HTTP_PORT": "abc"})
    with pytest.raises(ValueError, match="FLEETLOG_MODE"):
        Settings.from_env({"FLEETLOG_MODE": "sometimes"})


def test_topics_follow_the_prefix():
    s = Settings(topic_prefix="t1", home=Path("/x"))
    assert (s.metrics_topic, s.events_topic, s.dead_letter_topic) == ("t1.metrics", "t1.events", "t1.dead-letters")


def test_passwords_are_masked():
    assert mask_url("http://writer:s3cret@host:8123/db") == "http://writer:***@host:8123/db"
    assert "s3cret" not in mask_url("https://u:s3cret@h/db")
    assert mask_url("chdb:///var/x") == "chdb:///var/x"
