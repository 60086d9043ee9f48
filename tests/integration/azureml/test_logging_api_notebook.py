"""Every cell of Microsoft's logging-api notebook, with only its imports edited (and tqdm left out).

The cells are written from the notebook's API calls, in its order; what a reader would look
at in the portal is asserted against the store.  Between "complete" and "Analyzing results" a
person would wait for the page to refresh: the test polls until the sink has written the run.
"""

from __future__ import annotations

import math

import matplotlib
import pytest
from polling import eventually

matplotlib.use("Agg")

pytestmark = pytest.mark.timeout(180)


def test_logging_api_notebook_runs_unchanged_but_for_imports(notebook_env, capsys):
    # -- Validate Azure ML SDK installation
    import numpy as np

    import fleetlog.azureml.core
    from fleetlog.azureml.core import Experiment, Run, Workspace

    print(
        "This notebook was created using SDK version 1.6.0, you are currently running version",
        fleetlog.azureml.core.VERSION,
    )

    # -- Initialize workspace
    ws = Workspace.from_config()
    print(
        "Workspace name: " + ws.name,
        "Azure region: " + ws.location,
        "Subscription id: " + ws.subscription_id,
        "Resource group: " + ws.resource_group,
        sep="\n",
    )

    # -- Set experiment
    experiment = Experiment(workspace=ws, name="logging-api-test")

    # -- Starting a run
    run = experiment.start_logging()
    run_id = run.id
    scale_factor = 2
    category = "Red"
    assert "logging-api-test" in repr(run) and "logging-api-test" in repr(experiment)

    # -- Logging string metrics / numerical metrics
    run.log(name="Category", value=category)
    run.log(name="scale factor", value=scale_factor)
    run.log(name="Magic Number", value=42 * scale_factor)

    # -- Logging vectors
    fibonacci_values = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    scaled_values = (i * scale_factor for i in fibonacci_values)
    run.log_list(name="Fibonacci", value=scaled_values)
    for i in range(-10, 10):
        run.log(name="Sigmoid", value=1 / (1 + np.exp(-i)))

    # -- Logging tables
    sines = {"angle": [], "sine": []}
    for i in range(-10, 10):
        angle = i / 2.0 * scale_factor
        run.log_row(name="Cosine Wave", angle=angle, cos=np.cos(angle))
        sines["angle"].append(angle)
        sines["sine"].append(np.sin(angle))
    run.log_table(name="Sine Wave", value=sines)

    # -- Logging images
    import matplotlib.pyplot as plt

    angle = np.linspace(-3, 3, 50) * scale_factor
    plt.plot(angle, np.tanh(angle), label="tanh")
    plt.legend(fontsize=12)
    plt.title("Hyperbolic Tangent", fontsize=16)
    plt.grid(True)
    run.log_image(name="Hyperbolic Tangent", plot=plt)

    # -- Uploading files
    file_name = "outputs/myfile.txt"
    with open(file_name, "w") as f:
        f.write("This is an output file that will be uploaded.\n")
    run.upload_file(name=file_name, path_or_stream=file_name)

    # -- Completing the run
    run.complete()

    # -- Analyzing results (once the sink has written the run)
    fetched_run = eventually(lambda: Run(experiment, run_id))
    assert fetched_run.id == run_id and fetched_run.get_status() == "Completed"
    assert fetched_run._repr_html_()  # typing ``fetched_run`` in Jupyter shows its card

    metrics = eventually(lambda: _complete(fetched_run.get_metrics()))
    assert metrics["Category"] == "Red"
    assert metrics["scale factor"] == 2.0 and metrics["Magic Number"] == 84.0
    assert metrics["Fibonacci"] == [i * 2 for i in fibonacci_values]
    assert metrics["Sigmoid"] == pytest.approx([1 / (1 + math.exp(-i)) for i in range(-10, 10)])
    assert metrics["Cosine Wave"]["angle"] == [i * 1.0 for i in range(-10, 10)]
    assert metrics["Sine Wave"]["sine"] == pytest.approx([math.sin(i) for i in range(-10, 10)])
    assert metrics["Hyperbolic Tangent"].endswith(".png")
    assert not [k for k in metrics if k.startswith("sys/")], "fleetlog's telemetry is not what the script logged"
    assert any(k.startswith("sys/") for k in fetched_run.get_metrics(include_system=True))

    assert fetched_run.get_metrics(name="scale factor") == {"scale factor": 2.0}
    assert "outputs/myfile.txt" in fetched_run.get_file_names()

    import os

    os.makedirs("files", exist_ok=True)
    for f in run.get_file_names():
        dest = os.path.join("files", f.split("/")[-1])
        print(f"Downloading file {f} to {dest}...")
        fetched_run.download_file(f, dest)
    with open("files/myfile.txt") as fh:
        assert fh.read() == "This is an output file that will be uploaded.\n"

    # -- Tagging a run: valueless and valued tags
    fetched_run.tag("My Favorite Run")
    fetched_run.tag("Competition Rank", 1)
    fetched_run.flush()
    tags = eventually(lambda: _with(fetched_run.get_tags(), "Competition Rank"))
    assert tags == {"My Favorite Run": "", "Competition Rank": "1"}

    # -- beyond the notebook: the experiment lists the run; the portal link is the dashboard's page
    assert run_id in [r.id for r in experiment.get_runs()]
    assert fetched_run.get_portal_url().endswith(f"/#/run/{run_id}")
    assert "currently running version " + fleetlog.azureml.core.VERSION in capsys.readouterr().out


def _complete(metrics: dict) -> dict:
    """The metrics once every kind the notebook logged has reached the store."""
    wanted = {"Category", "Magic Number", "Fibonacci", "Sigmoid", "Cosine Wave", "Sine Wave", "Hyperbolic Tangent"}
    assert wanted <= set(metrics), sorted(wanted - set(metrics))
    assert len(metrics["Sigmoid"]) == 20 and len(metrics["Cosine Wave"]["angle"]) == 20
    return metrics


def _with(tags: dict, key: str) -> dict:
    assert key in tags
    return tags
