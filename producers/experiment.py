"""``Experiment``: a named group of runs, and the place runs are started from."""

from __future__ import annotations

import os
import socket
import uuid

from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._sender import Sender, Stream
from fleetlog.producers.run import Run

from fleetlog.config import Settings
from fleetlog.events import Envelope, Source

__all__ = ["Experiment", "process_source"]


def process_source() -> Source:
    """Who is logging: host, pid, and rank/world size from torchrun, Slurm or MPI variables."""
    env = os.environ
    rank = env.get("RANK") or env.get("SLURM_PROCID") or env.get("OMPI_COMM_WORLD_RANK") or "0"
    world = env.get("WORLD_SIZE") or env.get("SLURM_NTASKS") or env.get("OMPI_COMM_WORLD_SIZE") or "1"
    return Source(host=socket.gethostname(), pid=os.getpid(), rank=int(rank), world_size=int(world))


class Experiment:
    """Runs of one experiment; ``start_logging()`` begins an interactive run."""

    def __init__(self, name: str, *, project: str = "default", settings: Settings | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("Experiment needs a non-empty name, e.g. Experiment('mnist')")
        self.name = name
        self.project = project
        self.settings = settings or Settings.from_env()
        self._sender: Sender | None = None

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, project={self.project!r})"

    def _shared_sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.settings)
        return self._sender

    def start_logging(self, *, run_id: str | None = None, display_name: str | None = None, parent_id: str = "") -> Run:
        """Start a run and return it; its ``id`` is ``run_id`` or a new unique id."""
        run_id = run_id or os.environ.get("FLEETLOG_RUN_ID") or f"{self.name}_{uuid.uuid4().hex[:12]}"
        s = self.settings
        sender = self._shared_sender()
        buffer = MetricBuffer(
            capacity=s.max_buffer_points,
            wake_at=min(max(s.max_buffer_points // 4, 1), 250_000),
            wake=sender.wake,
        )
        template = Envelope(
            kind="metrics",
            run_id=run_id,
            project=self.project,
            experiment=self.name,
            source=process_source(),
        )
        stream = Stream(template, buffer)
        sender.register(stream)
        run = Run(sender=sender, stream=stream, display_name=display_name or run_id, parent_id=parent_id)
        return run._start()

    def close(self, timeout_seconds: float = 30.0) -> None:
        """Flush and stop the background sender (also done at interpreter exit)."""
        if self._sender is not None:
            self._sender.close(timeout_seconds)
            self._sender = None
