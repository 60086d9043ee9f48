"""Script runs, Azure's ``ScriptRunConfig`` + ``Experiment.submit``.

The script runs as a child process with the run's identity in its environment,
so ``fleetlog.Run.get_context()`` inside it returns the submitting run.  Its
stdout and stderr are read line by line into the run's ``logs`` table (and
echoed live when asked); the exit code decides Completed or Failed.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fleetlog.config import Settings
from fleetlog.errors import FleetlogError

__all__ = ["RunFailed", "ScriptRunConfig", "launch"]

_TAIL_LINES = 50


class RunFailed(FleetlogError):
    """A submitted script exited with an error; the message ends with its output's tail."""


@dataclass(frozen=True)
class ScriptRunConfig:
    """What to run: ``script`` (relative to ``source_directory``) with ``arguments`` and extra env vars."""

    source_directory: str | os.PathLike = "."
    script: str = ""
    arguments: tuple[str, ...] | list[str] = ()
    environment: dict[str, str] | None = field(default=None)
    python: str = ""  # the interpreter that runs the script; empty: this one (sys.executable)

    def __post_init__(self) -> None:
        if not self.script:
            raise ValueError("ScriptRunConfig needs script='train.py'")
        if not (Path(self.source_directory) / self.script).is_file():
            raise FileNotFoundError(f"ScriptRunConfig: no script {self.script!r} in {str(self.source_directory)!r}")


class ScriptProcess:
    """The child process of one submitted run, and the threads that read its output."""

    def __init__(self, run: Any, proc: subprocess.Popen, *, show_output: bool) -> None:
        self.run = run
        self.proc = proc
        self.echo = show_output
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._readers = [
            threading.Thread(target=self._pump, args=(proc.stdout, "stdout", sys.stdout), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr, "stderr", sys.stderr), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _pump(self, pipe: IO[str], stream: str, echo_to: IO[str]) -> None:
        for line in pipe:
            text = line.rstrip("\n")
            self.run.log_text(text, stream=stream)
            self.tail.append(text)
            if self.echo:
                echo_to.write(line)
                echo_to.flush()

    def wait(self, *, show_output: bool, timeout: float | None, raise_on_error: bool) -> dict[str, Any]:
        self.echo = self.echo or show_output
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join()
        if code == 0:
            self.run.complete()
        else:
            reason = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            tail = "\n".join(self.tail)
            self.run.fail(RunFailed(f"script failed ({reason}); last output:\n{tail}"))
            if raise_on_error:
                raise RunFailed(f"run {self.run.id} failed ({reason}). Last {len(self.tail)} lines:\n{tail}")
        return {"runId": self.run.id, "status": self.run.status, "exitCode": code}


def child_env(settings: Settings) -> dict[str, str]:
    """What a submitted script needs to log, and no more secrets than that.

    It logs to Kafka (and may read its run through the store's reader, whose credentials
    it finds under ``$FLEETLOG_HOME`` like any reader): the store's writer password and the
    dashboard's token stay with the submitter, also when they are in its own environment.
    The SASL password goes along only when the SDK needs it to reach Kafka.
    """
    secrets = {"store_reader_password"}
    if "SASL" in settings.kafka.security_protocol:
        secrets.add("kafka_sasl_password")
    return settings.child_env(secrets=secrets)


def launch(experiment: Any, config: ScriptRunConfig, *, show_output: bool) -> Any:
    """Start a run and its script; returns the run (``wait_for_completion()`` waits for it)."""
    run = experiment.start_logging(display_name=config.script, telemetry=False)
    run.outputs_dir = str(Path(config.source_directory) / "outputs")  # the script's ./outputs
    env = {
        **child_env(experiment.settings),
        **(config.environment or {}),
        "FLEETLOG_RUN_ID": run.id,
        "FLEETLOG_SUBMITTED": "1",
        "FLEETLOG_EXPERIMENT": experiment.name,
        "FLEETLOG_PROJECT": experiment.project,
        "FLEETLOG_RUN_NAME": run.display_name,
        "FLEETLOG_RUN_START": repr(run.start_time),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [config.python or sys.executable, config.script, *map(str, config.arguments)],
        cwd=config.source_directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        errors="replace",
    )
    run._process = ScriptProcess(run, proc, show_output=show_output)
    return run
