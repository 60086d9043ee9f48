"""Run the local single-node Kafka broker from Python (tests, CLI, `make demo`).

All the real work lives in deploy/kafka/kafka.sh, so the shell, the Makefile and Python start the broker the same
way; this module only turns Python settings into that script's environment and its output into values.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleetlog._private import private_dir

__all__ = ["KafkaStatus", "LocalKafka", "LocalKafkaError", "free_port", "script_path"]

SCRIPT_ENV = "FLEETLOG_KAFKA_SCRIPT"


def script_path() -> Path:
    """The broker script: $FLEETLOG_KAFKA_SCRIPT if set (tests, relocated installs), else the repo's copy."""
    override = os.environ.get(SCRIPT_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "kafka.sh"


class LocalKafkaError(RuntimeError):
    """The script failed; the message carries its output (on start failures, the broker log's tail)."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        super().__init__(f"kafka.sh {command} failed with exit code {returncode}:\n{output.strip()}")
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True, kw_only=True)
class KafkaStatus:
    """What `kafka.sh status` reports. `pid` is set while the process lives, even if it does not serve yet."""

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path


@dataclass(frozen=True, kw_only=True)
class LocalKafka:
    """One broker (KRaft, broker+controller in one JVM) whose data, config, log and pid live in `state_dir`.

    Immutable settings, not a handle: every method asks the script, so two `LocalKafka` objects with the same
    state dir see the same broker, and a broker started by `make` can be stopped from Python and vice versa.
    """

    state_dir: Path
    port: int = 9092
    controller_port: int | None = None  # None: port + 1, as the script does
    heap: str = "-Xmx512m -Xms256m"
    extra_properties: Path | None = None  # appended to server.properties (SASL/TLS listeners, overrides)
    scram_users: tuple[str, ...] = ()  # e.g. "SCRAM-SHA-512=[name=admin,password=secret]", created at format time
    start_timeout_seconds: float = 90

    @property
    def bootstrap(self) -> str:
        """The address clients connect to (the broker advertises exactly this)."""
        return f"127.0.0.1:{self.port}"

    def fetch(self) -> None:
        """Download the broker JARs once (Maven Central, cached per user); `start` does it too if needed."""
        self._run("fetch")

    def start(self) -> KafkaStatus:
        """Start the broker and return once it serves; a no-op if it already runs. Raises LocalKafkaError."""
        private_dir(Path(self.state_dir))  # the broker's data: every message logged (0700)
        self._run("start")
        status = self.status()
        if not status.running:
            raise LocalKafkaError("start", 0, f"the script reported success but status says: {status}")
        return status

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ~20 s); fine if it is not running."""
        self._run("stop")

    def status(self) -> KafkaStatus:
        """Ask whether the broker process lives and accepts connections on its port."""
        proc = self._run("status", ok_codes=(0, 1))
        words = proc.stdout.split()
        pid = next((int(w[4:]) for w in words if w.startswith("pid=") and w[4:].isdigit()), None)
        running = proc.returncode == 0 and bool(words) and words[0] == "running"
        return KafkaStatus(
            running=running, pid=pid, bootstrap=self.bootstrap, log_path=Path(self.state_dir) / "kafka.log"
        )

    def _env(self) -> dict[str, str]:
        # Every setting is passed explicitly so stray KAFKA_* variables in the caller's environment cannot
        # redirect this instance to another port or state dir; KAFKA_LIBS/KAFKA_JVM_FLAGS/KAFKA_CDS pass through.
        controller_port = self.port + 1 if self.controller_port is None else self.controller_port
        return {
            **os.environ,
            "KAFKA_STATE_DIR": str(Path(self.state_dir).absolute()),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_HEAP": self.heap,
            "KAFKA_START_TIMEOUT": str(max(1, math.ceil(self.start_timeout_seconds))),
            "KAFKA_EXTRA_PROPERTIES": "" if self.extra_properties is None else str(self.extra_properties),
            "KAFKA_SCRAM_USERS": ";".join(self.scram_users),
        }

    def _run(self, command: str, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        script = script_path()
        argv = [str(script), command] if os.access(script, os.X_OK) else ["bash", str(script), command]
        try:
            # The broker itself is detached with its output in kafka.log, so these pipes close when the script
            # exits. No timeout here: the script bounds the broker wait, and a first fetch may take minutes.
            proc = subprocess.run(argv, env=self._env(), capture_output=True, text=True, check=False)
        except OSError as exc:
            raise LocalKafkaError(command, -1, f"cannot run {script}: {exc}") from exc
        if proc.returncode not in ok_codes:
            raise LocalKafkaError(command, proc.returncode, proc.stdout + proc.stderr)
        return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and whose successor is free too.

    LocalKafka's default controller port is port + 1, so checking both keeps `LocalKafka(port=free_port())`
    from colliding. Another process may still grab it before the broker binds: fine for tests, not a lock.
    """
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no pair of adjacent free TCP ports found on 127.0.0.1")
