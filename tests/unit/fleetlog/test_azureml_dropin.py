"""The ``fleetlog.azureml`` drop-in, class by class, and every "not supported here" error.

No broker: these check what each class does where it is called (config search, the
interpreter chosen, the native config produced); the notebooks' integration tests run them
against a real broker and sink.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import fleetlog
import fleetlog.azureml.core as core
from fleetlog.azureml import NotSupportedHere
from fleetlog.azureml.core import Environment, Experiment, Model, Run, RunConfiguration, ScriptRunConfig, Workspace
from fleetlog.azureml.core.runconfig import PyTorchConfiguration
from fleetlog.azureml.widgets import RunDetails
from fleetlog.config import Settings
from fleetlog.errors import FleetlogError


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    return tmp_path


def test_core_exports_what_azureml_core_does():
    for name in ("Workspace", "Experiment", "Run", "ScriptRunConfig", "Environment", "Model", "VERSION"):
        assert name in core.__all__ and hasattr(core, name)
    assert fleetlog.__version__ == core.VERSION
    assert Run is fleetlog.Run and issubclass(Experiment, fleetlog.Experiment)  # a layer, not a second API
    from fleetlog.azureml.core.model import Model as ModelAgain
    from fleetlog.azureml.core.run import Run as RunAgain
    from fleetlog.models import Model as NativeModel

    assert RunAgain is Run and ModelAgain is Model is NativeModel


def test_workspace_from_config_searches_like_azure(tmp_path, monkeypatch):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    local = Workspace.from_config()
    assert (local.name, local.location, local.subscription_id, local.resource_group) == (
        "default",
        "local",
        "local",
        "local",
    )
    (tmp_path / ".azureml").mkdir()
    config = {"subscription_id": "sub-1", "resource_group": "rg", "workspace_name": "team-ws", "location": "here"}
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps(config))
    ws = Workspace.from_config()  # found two folders up, under .azureml/
    assert (ws.name, ws.subscription_id, ws.resource_group, ws.location) == ("team-ws", "sub-1", "rg", "here")
    (deep / "config.json").write_text(json.dumps({"workspace_name": "nearer"}))
    assert Workspace.from_config().name == "nearer"  # ./config.json comes first
    assert Workspace.from_config(path=tmp_path / ".azureml" / "config.json").name == "team-ws"
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        Workspace.from_config(path=tmp_path / "nowhere")
    (deep / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        Workspace.from_config()


def test_workspace_is_a_project_and_round_trips_its_config(tmp_path):
    ws = Workspace("s", "rg", "proj", settings=Settings.build(home=tmp_path))
    assert Workspace.from_config(path=ws.write_config(tmp_path)).name == "proj"
    assert ws.get_details()["resourceGroup"] == "rg" and Workspace.get("other").name == "other"
    exp = Experiment(workspace=ws, name="e")
    assert (exp.name, exp.project, exp.settings, exp.workspace) == ("e", "proj", ws.settings, ws)
    with pytest.raises(TypeError, match="needs a Workspace"):
        Experiment(workspace="ws", name="e")
    with pytest.raises(ValueError, match="workspace_name"):
        Workspace("s", "rg", "")


def test_user_managed_python_picks_the_interpreter(script):
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    assert ScriptRunConfig(source_directory=script, script="train.py", run_config=rc).native().python == ""
    rc.environment.python.interpreter_path = sys.executable
    rc.environment.environment_variables = {"SEED": 3}
    native = ScriptRunConfig(
        source_directory=script, script="train.py", arguments=["--alpha", 0.5], run_config=rc, compute_target="local"
    ).native()
    assert isinstance(native, fleetlog.ScriptRunConfig)
    assert (native.python, native.arguments, native.environment) == (sys.executable, ("--alpha", "0.5"), {"SEED": "3"})
    rc.environment.python.interpreter_path = str(script / "no-python")
    with pytest.raises(FileNotFoundError, match="interpreter_path"):
        ScriptRunConfig(source_directory=script, script="train.py", run_config=rc)
    with pytest.raises(FileNotFoundError, match="no script"):
        ScriptRunConfig(source_directory=script, script="missing.py")


def test_only_local_compute(script):
    for target in ("cpu-cluster", type("Compute", (), {"name": "gpu"})()):
        with pytest.raises(NotSupportedHere, match=r"compute_target=.*compute_target=.local."):
            ScriptRunConfig(source_directory=script, script="train.py", compute_target=target)
    with pytest.raises(NotSupportedHere, match="compute_target='aks'"):
        RunConfiguration().target = "aks"
    local = type("Compute", (), {"name": "local"})()
    assert (
        ScriptRunConfig(source_directory=script, script="train.py", compute_target=local).run_config.target == "local"
    )


@pytest.mark.parametrize(
    ("configure", "feature"),
    [
        (lambda: setattr(RunConfiguration().environment.python, "user_managed_dependencies", False), "conda build"),
        (lambda: setattr(RunConfiguration().environment.python, "conda_dependencies", object()), "conda_dep"),
        (lambda: setattr(Environment("e").python, "conda_dependencies_file", "env.yml"), "conda_dependencies_file"),
        (lambda: setattr(RunConfiguration().environment.docker, "enabled", True), "docker.enabled"),
        (lambda: setattr(Environment("e").docker, "base_image", "img"), "docker.base_image"),
        (lambda: setattr(RunConfiguration(), "auto_prepare_environment", True), "auto_prepare"),
        (lambda: setattr(RunConfiguration(), "framework", "R"), "framework"),
        (lambda: setattr(RunConfiguration(), "communicator", "Mpi"), "communicator"),
        (lambda: setattr(RunConfiguration(), "node_count", 2), "node_count"),
        (lambda: RunConfiguration(conda_dependencies=object()), "conda_dependencies"),
        (lambda: RunConfiguration(command=["python", "x.py"]), "command"),
        (lambda: Environment.from_conda_specification("e", "env.yml"), "from_conda_specification"),
        (lambda: Environment.from_pip_requirements("e", "requirements.txt"), "from_pip_requirements"),
        (lambda: Environment.from_docker_image("e", "img"), "from_docker_image"),
        (lambda: Environment.get(None, "e"), "Environment.get"),
        (lambda: Environment("e").register(None), "Environment.register"),
        (lambda: PyTorchConfiguration(process_count=4), "process_count=4"),
        (lambda: PyTorchConfiguration(node_count=2), "node_count=2"),
    ],
)
def test_every_unsupported_setting_raises_where_it_is_set(configure, feature):
    with pytest.raises(NotImplementedError, match=feature) as caught:
        configure()
    assert isinstance(caught.value, NotSupportedHere) and isinstance(caught.value, FleetlogError)
    assert "fleetlog" in str(caught.value)


def test_unsupported_script_run_options(script):
    for option in ({"command": ["python", "x.py"]}, {"resume_from": "x"}, {"docker_runtime_config": object()}):
        with pytest.raises(NotSupportedHere, match=next(iter(option))):
            ScriptRunConfig(source_directory=script, script="train.py", **option)
    with pytest.raises(NotSupportedHere, match="distributed_job_config"):
        ScriptRunConfig(source_directory=script, script="train.py", distributed_job_config=object())
    with pytest.raises(TypeError, match="RunConfiguration"):
        ScriptRunConfig(source_directory=script, script="train.py", run_config={"target": "local"})
    ok = ScriptRunConfig(source_directory=script, script="train.py", distributed_job_config=PyTorchConfiguration())
    assert ok.native().script == "train.py"


def test_run_needs_an_id_to_attach(tmp_path):
    exp = Experiment(workspace=Workspace(settings=Settings.build(home=tmp_path)), name="e")
    with pytest.raises(TypeError, match="start_logging"):
        Run(exp)


def test_run_details_is_the_notebook_card():
    with pytest.raises(TypeError, match="needs a run"):
        RunDetails("not a run")
