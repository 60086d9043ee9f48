"""Microsoft's train-on-local notebook, user-managed local run: train.py and mylib.py as they are
(``train_on_local/``, imports edited), the notebook's cells with their imports edited.

The system-managed (conda) and Docker cells raise ``NotSupportedHere`` where they configure
it: asserted here too, since that is what a user running the whole notebook meets.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from fleetlog.azureml import NotSupportedHere

pytestmark = pytest.mark.timeout(240)

SCRIPTS = Path(__file__).parent / "train_on_local"


def test_train_on_local_user_managed_run(notebook_env, capsys):
    for name in ("train.py", "mylib.py"):
        shutil.copy(SCRIPTS / name, notebook_env / name)

    import fleetlog.azureml.core

    print("SDK version:", fleetlog.azureml.core.VERSION)

    from fleetlog.azureml.core.workspace import Workspace

    ws = Workspace.from_config()
    print(ws.name, ws.resource_group, ws.location, ws.subscription_id, sep="\n")

    from fleetlog.azureml.core import Experiment

    experiment_name = "train-on-local"
    exp = Experiment(workspace=ws, name=experiment_name)

    from fleetlog.azureml.core.runconfig import RunConfiguration

    run_config_user_managed = RunConfiguration()
    run_config_user_managed.environment.python.user_managed_dependencies = True
    run_config_user_managed.environment.python.interpreter_path = sys.executable  # the notebook's commented line

    from fleetlog.azureml.core import ScriptRunConfig

    src = ScriptRunConfig(source_directory="./", script="train.py", run_config=run_config_user_managed)
    run = exp.submit(src)
    run.wait_for_completion(show_output=True)
    assert run.get_status() == "Completed"
    assert "alpha is 0.40, and mse is" in capsys.readouterr().out

    # -- the system-managed and Docker cells: refused where they are written
    run_config_system_managed = RunConfiguration()
    with pytest.raises(NotSupportedHere, match="conda"):
        run_config_system_managed.environment.python.user_managed_dependencies = False
    run_config_docker = RunConfiguration()
    with pytest.raises(NotImplementedError, match=r"docker\.enabled"):
        run_config_docker.environment.docker.enabled = True

    # -- Query run metrics (the run ended here, so the sink has had everything flushed to it)
    import numpy as np
    from polling import eventually

    metrics = eventually(lambda: _all_points(run.get_metrics()))
    best_alpha = metrics["alpha"][np.argmin(metrics["mse"])]
    print("When alpha is {1:0.2f}, we have min MSE {0:0.2f}.".format(min(metrics["mse"]), best_alpha))  # noqa: UP030 (as in the notebook)
    assert best_alpha == pytest.approx(0.40) and sorted(metrics) == ["alpha", "mse"]

    files = eventually(lambda: _all_files(run.get_file_names()))
    assert "outputs/ridge_0.40.pkl" in files

    # supply a model name, and the full path to the serialized model file.
    model = run.register_model(model_name="best_ridge_model", model_path="./outputs/ridge_0.40.pkl")
    print(model.name, model.version, model.url)
    assert (model.name, model.version, model.run_id) == ("best_ridge_model", 1, run.id)

    # the pickled model is the real one: it loads, from the run's files and from the registry
    import joblib

    from fleetlog.azureml.core import Model

    run.download_file("outputs/ridge_0.40.pkl", "best.pkl")
    assert joblib.load("best.pkl").alpha == pytest.approx(0.40)
    registered = Model(ws, "best_ridge_model")
    assert registered.version == 1 and registered.run_id == run.id
    assert joblib.load(registered.download("registered")).alpha == pytest.approx(0.40)


def _all_points(metrics: dict) -> dict:
    assert len(metrics.get("alpha", [])) == 20 and len(metrics.get("mse", [])) == 20
    return metrics


def _all_files(files: list[str]) -> list[str]:
    assert len([f for f in files if f.startswith("outputs/ridge_")]) == 20, files
    return files
