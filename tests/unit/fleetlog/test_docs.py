"""The README is the front door: every setting and every public name must be documented there."""

from __future__ import annotations

from pathlib import Path

import fleetlog
from fleetlog.config import ENV_VARS

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_every_environment_variable_is_in_the_readme():
    assert [var for var, _ in ENV_VARS.values() if f"`{var}`" not in README] == []


def test_public_names_are_exported_and_documented():
    assert set(fleetlog.__all__) <= set(dir(fleetlog))
    for name in ("Experiment", "ScriptRunConfig", "LoggingHandler", "RunFailed"):
        assert name in README
