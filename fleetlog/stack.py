"""The local stack: Kafka broker and sink as background processes under ``$FLEETLOG_HOME``.

Each component is a detached process with a pid file and a log file in the state
directory, so ``fleetlog up`` returns while they keep running, and ``down`` and
``status`` work from any shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetlog._private import private_dir
from fleetlog.config import Settings
from fleetlog.credentials import load_credentials
from fleetlog.localkafka import LocalKafka

__all__ = ["PROCESSOR", "SINK", "STACK", "STORE", "UI", "Component", "LocalStack"]


@dataclass(frozen=True)
class Component:
    """A background fleetlog process (sink, later processors and the UI)."""

    name: str
    args: tuple[str, ...]
    # The secret settings (config.SECRET_SETTINGS) its job needs; its environment holds no other.
    secrets: frozenset[str] = frozenset()


_STORE_SECRETS = frozenset({"store_writer_password", "store_reader_password"})
SINK = Component("sink", ("sink",), _STORE_SECRETS | {"kafka_sasl_password"})
# Not in STACK: a store served on its own (`fleetlog store serve`), for sinks that write to it over HTTP.
STORE = Component("store", ("store", "serve"), _STORE_SECRETS)
UI = Component("ui", ("ui",), frozenset({"store_reader_password", "ui_token"}))

# What `fleetlog up` starts, in order; `down` stops them in reverse.
STACK: list[Component] = [SINK]
STACK.append(UI)  # the dashboard reads through the sink's endpoint: start it after the sink
PROCESSOR = Component("processor", ("processor",), frozenset({"kafka_sasl_password"}))
STACK.append(PROCESSOR)  # rollups, summaries, alerts: its rows reach ClickHouse through the sink


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child still answers kill(0)
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


class LocalStack:
    """Start, stop and inspect the local broker and workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.state_dir
        _, _, port = settings.kafka.bootstrap.split(",")[0].rpartition(":")
        self.kafka = LocalKafka(state_dir=settings.home / "kafka", port=int(port or 9092))

    def _pid_file(self, comp: Component) -> Path:
        return self.run_dir / f"{comp.name}.pid"

    def log_file(self, comp: Component) -> Path:
        return self.run_dir / f"{comp.name}.log"

    def pid(self, comp: Component) -> int | None:
        try:
            pid = int(self._pid_file(comp).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, comp: Component, *, timeout_seconds: float = 60.0) -> int:
        """Start a component unless it runs already; wait until it is ready."""
        pid = self.pid(comp)
        if pid is not None:
            return pid
        self.prepare()
        env = self.settings.child_env(secrets=comp.secrets)
        with open(self.log_file(comp), "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleetlog", *comp.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._pid_file(comp).write_text(str(proc.pid))
        self._wait_ready(comp, proc, timeout_seconds)
        return proc.pid

    def prepare(self) -> None:
        """``$FLEETLOG_HOME``'s folders, 0700, and the store's credentials, before any component starts.

        The credentials exist before the sink, the store server or a reader first needs them,
        so all of them find the same pair (see :mod:`fleetlog.credentials`).
        """
        home = self.settings.home
        for folder in (self.run_dir, home / "kafka", self.settings.spool_dir):
            private_dir(folder, root=home)
        load_credentials(self.settings)

    def _wait_ready(self, comp: Component, proc: subprocess.Popen, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_file(comp).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"fleetlog {comp.name} exited with {proc.returncode}; its log ends:\n{tail}")
            if self._ready(comp):
                return
            time.sleep(0.2)
        raise RuntimeError(f"fleetlog {comp.name} not ready after {timeout_seconds}s; see {self.log_file(comp)}")

    def _ready(self, comp: Component) -> bool:
        if comp is STORE or (comp is SINK and self.settings.store.is_embedded):
            try:
                with urllib.request.urlopen(f"{self.settings.store.http_url}/ping", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False
        if comp is SINK:  # its status file appears once it consumes (a stale one names another pid)
            pid = self.pid(comp)
            return pid is not None and (self.run_dir / f"sink-{pid}.json").exists()
        if comp is PROCESSOR:  # its status file appears once it joined the group and recovered its state
            pid = self.pid(comp)
            return pid is not None and (self.run_dir / f"processor-{pid}.json").exists()
        if comp is UI:  # its state file appears once the socket accepts requests (a stale one names another pid)
            pid = self.pid(comp)
            return pid is not None and (self.run_dir / f"ui-{pid}.json").exists()
        return any(self.run_dir.glob(f"{comp.name}-*.json"))

    def stop(self, comp: Component, *, timeout_seconds: float = 30.0) -> bool:
        """SIGTERM (the component flushes), then SIGKILL after the timeout."""
        pid = self.pid(comp)
        self._pid_file(comp).unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        return True

    def up(self) -> None:
        self.prepare()
        self.kafka.start()
        for comp in STACK:
            self.start(comp)

    def down(self) -> None:
        for comp in reversed(STACK):
            self.stop(comp)
        self.kafka.stop()

    def address(self, comp: Component) -> str | None:
        """Where a component serves, if it serves anything."""
        if comp is STORE or (comp is SINK and self.settings.store.is_embedded):
            return self.settings.store.http_url
        if comp is UI:
            return self.settings.ui.url
        return None

    def status(self) -> dict[str, Any]:
        """Each component's pid, state and address (``fleetlog status --json``)."""
        k = self.kafka.status()
        report: dict[str, Any] = {
            "kafka": {
                "state": "running" if k.running else "stopped",
                "pid": k.pid,
                "address": k.bootstrap,
                "log": str(k.log_path),
            },
        }
        for comp in STACK + ([STORE] if self.pid(STORE) else []):
            pid = self.pid(comp)
            workers: dict[str, Any] = {}
            for path in self.run_dir.glob(f"{comp.name}-*.json"):
                with contextlib.suppress(OSError, ValueError):
                    workers[path.stem] = json.loads(path.read_text())
            report[comp.name] = {
                "state": "running" if pid else "stopped",
                "pid": pid,
                "address": self.address(comp),
                "log": str(self.log_file(comp)),
                "workers": workers,
            }
        report["topics"] = [self.settings.metrics_topic, self.settings.events_topic, self.settings.dead_letter_topic]
        return report
