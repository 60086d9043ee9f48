"""The read side of the model registry: ``Model``, ``Model.list``, ``download`` and ``fleetlog models`` over a store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from typer.testing import CliRunner

from fleetlog.cli import app
from fleetlog.errors import FleetlogError
from fleetlog.models import Model, ModelNotFound, settings_of

REGISTRATIONS = {("mnist", 1): "a" * 32, ("mnist", 2): "b" * 32, ("bert", 1): "c" * 32}


@pytest.fixture(scope="module")
def registry(query_store, tmp_path_factory):
    """Three registrations in the store, their files in a local artifact store."""
    settings = query_store.settings
    root = Path(fsspec.core.url_to_fs(settings.sdk.artifacts_url)[1])
    rows = []
    for name, version, tags, payload in (
        ("mnist", 1, {"area": "vision"}, b"first"),
        ("mnist", 2, {"area": "vision", "stage": "prod"}, b"second"),
        ("bert", 1, {"area": "nlp"}, b"tokens"),
    ):
        reg = REGISTRATIONS[name, version]
        folder = root / "models" / name / reg
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "weights.bin").write_bytes(payload)
        (folder / "model" / "sub").mkdir()
        (folder / "model" / "sub" / "config.json").write_text(json.dumps({"v": version}))
        url = "file:///etc" if name == "bert" else folder.as_uri()  # a forged url is never followed
        stamp = pd.Timestamp(time.time(), unit="s", tz="UTC")
        props = json.dumps({"acc": "0.9"})
        row = [name, version, reg, "r-long", "alpha", "default", url, "model", "d", json.dumps(tags)]
        rows.append([*row, props, len(payload), stamp])
    columns = ["name", "version", "registration_id", "run_id", "experiment", "project", "url", "path", "description"]
    bad = ["forged", 1, "../../etc", "r-other", *rows[-1][4:]]  # a malformed row: never read
    query_store.owner.insert("models", [*rows, bad], column_names=[*columns, "tags", "properties", "size", "ts"])
    return settings


def test_a_model_is_the_latest_version_unless_one_is_named(registry) -> None:
    latest = Model(registry, "mnist")
    assert (latest.name, latest.version, latest.run_id, latest.id) == ("mnist", 2, "r-long", "mnist:2")
    assert latest.tags == {"area": "vision", "stage": "prod"} and latest.properties == {"acc": "0.9"}
    assert Model(registry, "mnist", version=1).version == 1
    assert Model(registry, id="mnist:1").version == 1


def test_list_filters_by_name_and_tags_newest_first(registry) -> None:
    assert [m.id for m in Model.list(registry)] == ["bert:1", "forged:1", "mnist:2", "mnist:1"]
    assert [m.id for m in Model.list(registry, name="mnist")] == ["mnist:2", "mnist:1"]
    assert [m.id for m in Model.list(registry, tags=[["area", "vision"]])] == ["mnist:2", "mnist:1"]
    assert [m.id for m in Model.list(registry, tags=["stage"])] == ["mnist:2"]
    assert [m.id for m in Model.list(registry, latest=True)] == ["bert:1", "forged:1", "mnist:2"]
    assert Model.list(registry, name="nothing") == []
    assert [m.id for m in Model.list(registry, properties=[["acc", "0.9"]], name="bert")] == ["bert:1"]
    assert Model.list(registry, properties=["missing"]) == []


def test_download_copies_the_folder_byte_for_byte(registry, tmp_path: Path) -> None:
    path = Path(Model(registry, "mnist", version=1).download(tmp_path))
    assert path == tmp_path / "model"
    assert (path / "weights.bin").read_bytes() == b"first"
    assert json.loads((path / "sub" / "config.json").read_text()) == {"v": 1}
    with pytest.raises(FileExistsError, match="exist_ok=True"):
        Model(registry, "mnist").download(tmp_path)
    Model(registry, "mnist").download(tmp_path, exist_ok=True)
    assert (path / "weights.bin").read_bytes() == b"second"


def test_download_never_follows_the_stored_url_nor_a_malformed_row(registry, tmp_path: Path) -> None:
    bert = Model(registry, "bert")
    assert bert.url == "file:///etc"  # what a forged event could store
    assert Path(bert.download(tmp_path), "weights.bin").read_bytes() == b"tokens"  # read from the store's own root
    with pytest.raises(FleetlogError, match="malformed"):
        Model(registry, "forged").download(tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "nothing"}, ModelNotFound, "no model 'nothing'"),
        ({"name": "mnist", "version": 9}, ModelNotFound, "no version 9 of model 'mnist'"),
        ({"name": "not a name"}, ValueError, "is not valid"),
        ({}, ValueError, "needs a name"),
        ({"name": "mnist", "model_framework": "ScikitLearn"}, NotImplementedError, "model_framework"),
    ],
)
def test_model_errors_say_what_to_do(registry, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        Model(registry, **kwargs)


def test_the_workspace_names_the_store(registry) -> None:
    class Workspace:
        settings = registry

    assert settings_of(Workspace()) is registry and settings_of(registry) is registry
    with pytest.raises(TypeError, match="workspace must be"):
        settings_of("my-workspace")


@pytest.fixture
def cli(registry, monkeypatch):
    monkeypatch.setenv("FLEETLOG_CLICKHOUSE_URL", registry.store.url)
    monkeypatch.setenv("FLEETLOG_HOME", str(registry.home))
    monkeypatch.setenv("COLUMNS", "200")
    return lambda *args: CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_models_cli(cli, tmp_path: Path) -> None:
    listed = json.loads(cli("models", "list", "--json").stdout)
    assert [(m["name"], m["version"]) for m in listed] == [("bert", 1), ("forged", 1), ("mnist", 2), ("mnist", 1)]
    assert [
        m["version"] for m in json.loads(cli("models", "list", "mnist", "--tag", "stage=prod", "--json").stdout)
    ] == [2]
    table = cli("models", "list")
    assert table.exit_code == 0 and "bert" in table.stdout and "area=vision, stage=prod" in table.stdout
    shown = json.loads(cli("models", "show", "mnist", "--version", "1", "--json").stdout)
    assert shown["version"] == 1 and shown["tags"] == {"area": "vision"} and shown["run_id"] == "r-long"
    assert "r-long" in cli("models", "show", "bert").stdout
    out = cli("models", "download", "bert", str(tmp_path))
    assert out.exit_code == 0 and (tmp_path / "model" / "weights.bin").read_bytes() == b"tokens"
    assert cli("models", "download", "bert", str(tmp_path)).exit_code == 1  # already there, no --overwrite
    missing = cli("models", "show", "nothing")
    assert missing.exit_code == 1 and "Model.list" in missing.stderr


def test_the_dashboard_lists_a_run_s_models_and_a_model_s_runs(registry) -> None:
    import warnings

    with warnings.catch_warnings():  # starlette 1.x nudges from httpx towards httpx2; httpx works
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from fleetlog.ui.app import create_app

    with TestClient(create_app(registry), base_url="http://127.0.0.1") as http:
        own = http.get("/api/models", params={"run": "r-long"}).json()["models"]
        assert [(m["name"], m["version"]) for m in own] == [("bert", 1), ("mnist", 2), ("mnist", 1)]
        versions = http.get("/api/models", params={"name": "mnist"}).json()["models"]
        assert [(m["version"], m["run_id"]) for m in versions] == [(2, "r-long"), (1, "r-long")]
        assert "url" not in versions[0] and "registration_id" not in versions[0]  # no paths of the artifact store
        assert http.get("/api/models", params={"run": "nobody"}).json() == {"models": []}
