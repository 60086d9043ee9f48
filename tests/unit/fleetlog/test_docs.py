"""docs/configuration.md is generated from the declarations; every public name is documented."""

from __future__ import annotations

from pathlib import Path

import fleetlog
from fleetlog.config import declared
from fleetlog.config.__main__ import markdown

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_the_configuration_reference_is_generated_from_the_declarations():
    assert CONFIGURATION.read_text() == markdown(), "docs/configuration.md is stale: run `make config-docs`"


def test_every_environment_variable_is_in_the_configuration_reference():
    text = CONFIGURATION.read_text()
    assert [
        f.metadata["setting"].env for _, f in declared().values() if f"`{f.metadata['setting'].env}`" not in text
    ] == []


def test_public_names_are_exported_and_documented():
    assert set(fleetlog.__all__) <= set(dir(fleetlog))
    for name in ("Experiment", "ScriptRunConfig", "LoggingHandler", "RunFailed"):
        assert name in README
