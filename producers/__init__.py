"""The SDK a training script runs: ``Experiment``, ``Run``, the buffer and the Kafka sender."""

import logging

from fleetlog.producers.experiment import Experiment
from fleetlog.producers.run import Run

from fleetlog.events import RunStatus

__all__ = ["Experiment", "Run", "RunStatus"]

# A library never prints on its own: without logging configured, the SDK's and
# aiokafka's records go nowhere (``logging.basicConfig()`` shows them).
for _name in ("fleetlog", "aiokafka"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
