"""A drop-in for the parts of Azure ML's v1 SDK (``azureml.core``) that logging and local runs use.

Replace ``azureml.core`` by ``fleetlog.azureml.core`` (and ``azureml.widgets`` by
``fleetlog.azureml.widgets``) in the imports; the rest of the code stays as it is.
Every class here is a thin layer over fleetlog's own API (``fleetlog.Experiment``,
``fleetlog.Run``, ``fleetlog.ScriptRunConfig``): a workspace is a fleetlog project, an
experiment is an experiment, a run is a run.  What has no meaning without Azure
(remote compute, conda or Docker environments) raises :class:`NotSupportedHere`, a
``NotImplementedError`` whose message says what to do instead.
"""

from __future__ import annotations

from fleetlog.azureml._unsupported import NotSupportedHere

__all__ = ["NotSupportedHere"]
