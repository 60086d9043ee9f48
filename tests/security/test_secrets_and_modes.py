"""Secrets stay private: folder and file modes under $FLEETLOG_HOME, reprs, what a submitted script gets."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import textwrap
from pathlib import Path

import pytest
from fleetlog.producers._spool import Frame, Spool

import fleetlog
from fleetlog._private import private_dir
from fleetlog.config import Settings, mask_url
from fleetlog.credentials import StoreCredentials, credentials_path, load_credentials, store_url
from fleetlog.script_run import ScriptRunConfig
from fleetlog.stack import PROCESSOR, SINK, UI, LocalStack
from fleetlog.store.endpoint._engine import HandlePool
from fleetlog.store.endpoint._handler import EndpointConfig

SECRETS = {
    "store_writer_password": "writer-secret-1",
    "store_reader_password": "reader-secret-2",
    "ui_token": "ui-token-secret-3",
    "kafka_sasl_password": "sasl-secret-4",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_credentials_file_is_0600_in_0700_folders_from_the_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    creds = load_credentials(Settings(home=home))
    path = credentials_path(home)
    assert (mode(home), mode(path.parent), mode(path)) == (0o700, 0o700, 0o600)
    assert json.loads(path.read_text())["reader"]["password"] == creds.reader.password
    assert load_credentials(Settings(home=home)) == creds  # found, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["store.json"]  # no temporary file left behind


def _load_in_child(home: str) -> tuple[str, str]:
    creds = load_credentials(Settings(home=Path(home)))
    return creds.writer.password, creds.reader.password


def test_processes_racing_to_create_the_credentials_agree_on_one_pair(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pairs = set(pool.map(_load_in_child, [home] * 8))
    assert len(pairs) == 1 and pairs == {_load_in_child(home)}


def test_env_overrides_win_and_a_loose_file_is_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    load_credentials(Settings(home=home))
    os.chmod(credentials_path(home), 0o644)
    os.chmod(home, 0o755)
    creds = load_credentials(Settings.build(home=home, store_reader_password="from-env"))
    assert creds.reader.password == "from-env" and creds.writer.password != "from-env"
    assert (mode(credentials_path(home)), mode(home)) == (0o600, 0o700)


def test_fleetlog_up_makes_home_and_its_folders_private_and_tightens_old_ones(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for folder in (home, home / "state", home / "spool"):
        folder.mkdir(mode=0o755)
        os.chmod(folder, 0o755)  # as an older version (or the umask) left them
    LocalStack(Settings(home=home)).prepare()
    for folder in (home, home / "state", home / "spool", home / "kafka", home / "credentials"):
        assert mode(folder) == 0o700, folder
    assert mode(credentials_path(home)) == 0o600


def test_private_dir_creates_every_missing_level_0700_and_leaves_foreign_parents_alone(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    deep = private_dir(tmp_path / "a" / "b" / "c", root=tmp_path / "a")
    assert [mode(p) for p in (deep, deep.parent, deep.parent.parent)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # above the root: not fleetlog's to change


def test_spool_segments_are_0600_in_0700_folders(tmp_path: Path) -> None:
    spool_root = tmp_path / "home" / "spool"
    spool_root.mkdir(parents=True)
    os.chmod(spool_root, 0o755)
    spool = Spool(spool_root / "session-1", max_bytes=1 << 20)
    assert spool.append([Frame("t", b"k", b"every point a run logged", 3)]) == 0
    spool.release()
    [segment] = (spool_root / "session-1").glob("*.spool")
    assert (mode(spool_root), mode(segment.parent), mode(segment)) == (0o700, 0o700, 0o600)


def test_default_artifacts_folder_is_private(tmp_path: Path) -> None:
    settings = Settings.build(home=tmp_path / "home", mode="offline", telemetry_interval_seconds=0, outputs_dir="")
    run = fleetlog.Experiment("modes", settings=settings).start_logging()
    run.complete()
    assert mode(settings.home / "artifacts") == 0o700


def test_no_repr_shows_a_secret(tmp_path: Path) -> None:
    settings = Settings.build(home=tmp_path, **SECRETS, clickhouse_url="http://u:url-secret-5@db:8123/x")
    creds = StoreCredentials.generate()
    shown = [repr(settings), str(settings), repr(creds), repr(creds.writer), repr(creds.reader)]
    pool = HandlePool(":memory:")
    shown.append(repr(EndpointConfig(pool=pool, credentials=creds, timezone="UTC", formats={})))
    pool.close()
    url = store_url(Settings.build(home=tmp_path, http_port=9), "reader")
    shown.append(mask_url(url))
    secrets = [*SECRETS.values(), "url-secret-5", creds.writer.password, creds.reader.password]
    secrets.append(load_credentials(Settings(home=tmp_path)).reader.password)
    for text in shown:
        assert not [s for s in secrets if s in text], text
    assert "fleetlog_reader" in url and "***" in mask_url(url)


def test_each_stack_component_gets_only_the_secrets_it_needs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEETLOG_STORE_WRITER_PASSWORD", "inherited-writer")
    settings = Settings.build(home=tmp_path, **SECRETS)
    values = {comp.name: settings.child_env(secrets=comp.secrets) for comp in (SINK, UI, PROCESSOR)}
    assert values["sink"]["FLEETLOG_STORE_WRITER_PASSWORD"] == SECRETS["store_writer_password"]
    assert "FLEETLOG_STORE_WRITER_PASSWORD" not in values["ui"] and "FLEETLOG_UI_TOKEN" in values["ui"]
    assert not {"FLEETLOG_STORE_WRITER_PASSWORD", "FLEETLOG_STORE_READER_PASSWORD", "FLEETLOG_UI_TOKEN"} & set(
        values["processor"]
    )
    assert values["processor"]["FLEETLOG_KAFKA_BOOTSTRAP"] == settings.kafka.bootstrap


DUMP_ENV = """
import json, os, sys
import fleetlog
run = fleetlog.Run.get_context()
run.log("x", 1.0)
json.dump(dict(os.environ), open(sys.argv[1], "w"))
"""


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_a_submitted_script_gets_what_it_needs_to_log_and_no_other_secret(
    tmp_path: Path, monkeypatch, protocol: str
) -> None:
    monkeypatch.setenv("FLEETLOG_UI_TOKEN", "inherited-token")
    monkeypatch.setenv("FLEETLOG_STORE_WRITER_PASSWORD", "inherited-writer")
    settings = Settings.build(
        home=tmp_path / "home",
        mode="offline",  # the SDK spools: no broker needed to see what the child was given
        telemetry_interval_seconds=0,
        outputs_dir="",
        kafka_security_protocol=protocol,
        kafka_sasl_username="trainer",
        **SECRETS,
    )
    (tmp_path / "train.py").write_text(textwrap.dedent(DUMP_ENV))
    dump = tmp_path / "env.json"
    config = ScriptRunConfig(source_directory=str(tmp_path), script="train.py", arguments=[str(dump)])
    run = fleetlog.Experiment("submit-env", settings=settings).submit(config)
    result = run.wait_for_completion(raise_on_error=True)
    assert result["status"] == "Completed", result
    env = json.loads(dump.read_text())
    for var in ("FLEETLOG_STORE_WRITER_PASSWORD", "FLEETLOG_UI_TOKEN"):
        assert var not in env
    for secret in ("inherited-token", "inherited-writer", SECRETS["ui_token"], SECRETS["store_writer_password"]):
        assert secret not in json.dumps(env)
    assert env["FLEETLOG_RUN_ID"] == run.id and env["FLEETLOG_HOME"] == str(settings.home)
    assert env["FLEETLOG_MODE"] == "offline" and env["PATH"] == os.environ["PATH"]
    assert ("FLEETLOG_KAFKA_SASL_PASSWORD" in env) == (protocol == "SASL_PLAINTEXT")
