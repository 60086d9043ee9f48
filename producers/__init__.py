"""The SDK a training script runs: ``Experiment``, ``Run``, the buffer and the Kafka sender."""

from fleetlog.producers.experiment import Experiment
from fleetlog.producers.run import Run, RunStatus

__all__ = ["Experiment", "Run", "RunStatus"]
