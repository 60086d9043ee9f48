"""deploy/kafka/kafka.sh and fleetlog.localkafka without a broker (no Java needed, a few ms each)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from fleetlog.localkafka import SCRIPT_ENV, LocalKafka, LocalKafkaError, free_port, script_path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"

# What kafka.sh runs before it looks for java/mvn; everything else on PATH (java, mvn) is left out.
TOOLS = [
    "bash", "env", "dirname", "basename", "mkdir", "cat", "rm", "mv", "mktemp", "flock", "readlink", "stat",
    "cksum", "tr", "grep", "head", "tail", "sleep", "setsid", "nohup", "base64", "chmod", "sed",
]  # fmt: skip


def path_without(tmp_path: Path, *, keep: tuple[str, ...] = ()) -> str:
    """A PATH holding only TOOLS (plus `keep`), as on a machine without Java and Maven."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*TOOLS, *keep):
        found = shutil.which(tool)
        assert found, f"{tool} is needed by kafka.sh"
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False)


def test_script_is_executable_and_found() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert script_path() == SCRIPT


def test_status_on_empty_state_dir_says_stopped(tmp_path: Path) -> None:
    status = LocalKafka(state_dir=tmp_path / "state", port=free_port()).status()
    assert not status.running
    assert status.pid is None
    assert status.log_path == tmp_path / "state" / "kafka.log"


def test_stop_when_not_running_is_fine(tmp_path: Path) -> None:
    LocalKafka(state_dir=tmp_path, port=free_port()).stop()


def test_stale_pid_file_is_not_a_broker(tmp_path: Path) -> None:
    # A pid that lives but is not our java (here: pytest itself) must not count as running, nor be killed.
    (tmp_path / "kafka.pid").write_text(f"{os.getpid()}\n")
    kafka = LocalKafka(state_dir=tmp_path, port=free_port())
    assert not kafka.status().running
    kafka.stop()
    assert not (tmp_path / "kafka.pid").exists()


@pytest.mark.parametrize("command", ["fetch", "start"])
def test_missing_java_and_mvn_exit_3_naming_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", path_without(tmp_path))
    monkeypatch.setenv("KAFKA_LIBS", str(tmp_path / "cache" / "libs"))
    kafka = LocalKafka(state_dir=tmp_path / "state", port=free_port())
    with pytest.raises(LocalKafkaError) as info:
        kafka.fetch() if command == "fetch" else kafka.start()
    assert info.value.returncode == 3
    assert "'java' not found" in str(info.value)
    assert "openjdk-17-jre-headless maven" in str(info.value)
    assert not (tmp_path / "cache" / "libs").exists()


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java on PATH to leave only mvn out")
def test_missing_mvn_exits_3(tmp_path: Path) -> None:
    env = {
        "PATH": path_without(tmp_path, keep=("java",)),
        "HOME": str(tmp_path),
        "KAFKA_LIBS": str(tmp_path / "libs"),
    }
    proc = run_script("fetch", env=env)
    assert proc.returncode == 3
    assert "'mvn' not found" in proc.stderr


def test_usage_and_missing_state_dir(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_LIBS": str(tmp_path / "libs")}
    env.pop("KAFKA_STATE_DIR", None)
    for args in [(), ("frobnicate",), ("start", "extra")]:
        proc = run_script(*args, env=env)
        assert proc.returncode == 2
        assert "usage:" in proc.stderr
    proc = run_script("status", env=env)
    assert proc.returncode == 2
    assert "KAFKA_STATE_DIR is not set" in proc.stderr


def test_errors_carry_the_script_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake.sh"
    fake.write_text('#!/usr/bin/env bash\necho "port=$KAFKA_PORT controller=$KAFKA_CONTROLLER_PORT"\nexit 5\n')
    fake.chmod(0o755)
    monkeypatch.setenv(SCRIPT_ENV, str(fake))
    monkeypatch.setenv("KAFKA_PORT", "1")  # the instance's settings win over the caller's environment
    with pytest.raises(LocalKafkaError) as info:
        LocalKafka(state_dir=tmp_path, port=19092).start()
    assert info.value.returncode == 5
    assert "port=19092 controller=19093" in str(info.value)


def test_bootstrap() -> None:
    assert LocalKafka(state_dir=Path("x"), port=12345).bootstrap == "127.0.0.1:12345"


def test_free_port_and_its_successor_are_free() -> None:
    port = free_port()
    for candidate in (port, port + 1):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", candidate))
