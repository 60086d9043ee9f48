"""``Experiment``: a named group of runs, and the place runs are started from."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from fleetlog.producers._artifacts import ArtifactStore
from fleetlog.producers._buffer import MetricBuffer
from fleetlog.producers._sender import Sender, Stream
from fleetlog.producers.run import Run
from fleetlog.producers.telemetry import Sampler

from fleetlog._private import private_dir
from fleetlog.config import Settings
from fleetlog.events import Envelope, Source

__all__ = ["Experiment", "job_run_id", "process_source"]


def _private_artifacts(settings: Settings) -> None:
    """The default artifact folder lies under ``$FLEETLOG_HOME``: 0700 like the rest of it.

    A folder the user configured (``FLEETLOG_ARTIFACTS_URL``) may be shared on purpose: left as it is.
    """
    default = (settings.home / "artifacts").as_uri()
    if settings.sdk.artifacts_url.rstrip("/") == default:
        private_dir(settings.home / "artifacts", root=settings.home)


def process_source() -> Source:
    """Who is logging: host, pid, and rank/world size from torchrun, Slurm or MPI variables."""
    env = os.environ
    rank = env.get("RANK") or env.get("SLURM_PROCID") or env.get("OMPI_COMM_WORLD_RANK") or "0"
    world = env.get("WORLD_SIZE") or env.get("SLURM_NTASKS") or env.get("OMPI_COMM_WORLD_SIZE") or "1"
    return Source(host=socket.gethostname(), pid=os.getpid(), rank=int(rank), world_size=int(world))


def job_run_id() -> str | None:
    """The id every rank of one distributed job agrees on, from the launcher's environment."""
    env = os.environ
    if env.get("FLEETLOG_RUN_ID"):
        return env["FLEETLOG_RUN_ID"]
    if env.get("TORCHELASTIC_RUN_ID", "none") != "none":
        return f"torchelastic-{env['TORCHELASTIC_RUN_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    return None


class Experiment:
    """Runs of one experiment; ``start_logging()`` begins an interactive run."""

    run_class: type[Run] = Run

    def __init__(self, name: str, *, project: str = "default", settings: Settings | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("Experiment needs a non-empty name, e.g. Experiment('mnist')")
        self.name = name
        self.project = project
        self.settings = settings or Settings.from_env()
        self._sender: Sender | None = None
        self._artifacts: ArtifactStore | None = None

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, project={self.project!r})"

    def _shared(self) -> tuple[Sender, ArtifactStore]:
        if self._sender is None:
            self._sender = Sender(self.settings)
            _private_artifacts(self.settings)
            self._artifacts = ArtifactStore(self.settings.sdk.artifacts_url, staging_dir=self.settings.home / "staging")
        assert self._artifacts is not None
        return self._sender, self._artifacts

    def start_logging(
        self,
        *,
        run_id: str | None = None,
        display_name: str | None = None,
        parent_id: str = "",
        telemetry: bool = True,
        **run_options: Any,
    ) -> Run:
        """Start a run and return it; its ``id`` is ``run_id``, the job's id, or a new unique id.

        Under torchrun or Slurm every rank gets the same id (see ``job_run_id``), so
        all ranks log into one run.
        """
        run = self._open_run(
            run_id=run_id, display_name=display_name, parent_id=parent_id, telemetry=telemetry, **run_options
        )
        self._before_start(run)
        return run._start(start_time=getattr(run, "_resumed_start", None))

    def _open_run(
        self,
        *,
        run_id: str | None,
        display_name: str | None = None,
        parent_id: str = "",
        telemetry: bool = False,
        **run_options: Any,
    ) -> Run:
        """A Run wired to this experiment's sender and artifact store, not yet started."""
        parts = self._wiring(run_id, parent_id)
        run = self.run_class(
            **parts,
            display_name=display_name or parts["stream"].template.run_id,
            parent_id=parent_id,
            **run_options,
        )
        self._register(run, telemetry=telemetry)
        return run

    def _wiring(self, run_id: str | None, parent_id: str = "") -> dict[str, Any]:
        """A new run's experiment, sender, stream and artifact store, its id resolved: ``run_class``'s arguments.

        Apart from :meth:`_open_run` so that a handle built by its own constructor (Azure's
        ``Run(experiment, run_id)``) is wired the same way.
        """
        if run_id is not None and (not isinstance(run_id, str) or not run_id or len(run_id) > 256):
            raise ValueError(f"run_id must be a non-empty str of at most 256 chars, got {run_id!r}")
        run_id = run_id or (None if parent_id else job_run_id()) or f"{self.name}_{uuid.uuid4().hex[:12]}"
        s = self.settings
        sender, artifacts = self._shared()
        buffer = MetricBuffer(
            capacity=s.sdk.max_buffer_points,
            wake_at=min(max(s.sdk.max_buffer_points // 4, 1), 250_000),
            wake=sender.wake,
            when_full=s.sdk.buffer_when_full,
            block_timeout_seconds=s.sdk.block_timeout_seconds,
        )
        template = Envelope(
            kind="metrics", run_id=run_id, project=self.project, experiment=self.name, source=process_source()
        )
        return {"experiment": self, "sender": sender, "stream": Stream(template, buffer), "artifacts": artifacts}

    def _register(self, run: Run, *, telemetry: bool = False) -> None:
        """Hand a wired run's stream to the sender (with the telemetry sampler when asked)."""
        interval = self.settings.sdk.telemetry_interval_seconds
        if telemetry and interval > 0:
            run._stream.periodic.append(Sampler(run.log_metrics, interval_seconds=interval))
        run._sender.register(run._stream)

    def _before_start(self, run: Run) -> None:
        """Hook for the facade: a resumed run picks up its steps and start time here."""

    def close(self, timeout_seconds: float = 30.0) -> None:
        """Flush and stop the background sender (also done at interpreter exit)."""
        if self._artifacts is not None:
            self._artifacts.wait(timeout_seconds)
        if self._sender is not None:
            self._sender.close(timeout_seconds)
            self._sender = None
