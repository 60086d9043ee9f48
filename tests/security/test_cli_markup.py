"""The CLI prints user data literally: run names that look like Rich markup neither crash nor style.

Runs are planted in a real store (served by the endpoint) and the real ``fleetlog`` command
reads them in its own process, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from security.conftest import SecuredStore

HOSTILE = {"m-close": "[/]", "m-link": "[link=https://x]y", "m-style": "[bold red]x", "m-escape": "back\\"}


@pytest.fixture(scope="module")
def store(secured_store: SecuredStore) -> SecuredStore:
    for run_id, name in HOSTILE.items():
        secured_store.add_run(run_id, name, experiment="[/]exp", error=f"boom {name}")
    return secured_store


def fleetlog(store: SecuredStore, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLEETLOG_HOME": str(store.settings.home),
        "FLEETLOG_CLICKHOUSE_URL": store.settings.store.url,
        "COLUMNS": "250",  # no wrapping: names appear whole
    }
    return subprocess.run(
        [sys.executable, "-m", "fleetlog", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_runs_table_prints_names_literally(store: SecuredStore) -> None:
    result = fleetlog(store, "runs", "--experiment", "[/]exp")
    assert result.returncode == 0, result.stderr
    for run_id, name in HOSTILE.items():
        assert run_id in result.stdout and name in result.stdout, (name, result.stdout)
    assert "[/]exp" in result.stdout


@pytest.mark.parametrize("run_id", sorted(HOSTILE))
def test_show_prints_name_and_error_literally(store: SecuredStore, run_id: str) -> None:
    result = fleetlog(store, "show", run_id)
    assert result.returncode == 0, result.stderr
    assert HOSTILE[run_id] in result.stdout and f"boom {HOSTILE[run_id]}" in result.stdout, result.stdout


def test_an_error_about_a_hostile_id_is_printed_literally(store: SecuredStore) -> None:
    result = fleetlog(store, "show", "[/][bold]nope")
    assert result.returncode == 1 and "[/][bold]nope" in result.stderr, result.stderr
