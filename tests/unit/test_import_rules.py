"""The import rules between fleetlog's parts, read from the source (every import, in functions too).

    base         fleetlog.errors, .events, .config, .retry, ._status, ._private, .credentials,
                 ._browser: the wire format, settings, errors and stdlib helpers; import only the base
    kafka        fleetlog.topics, .lag: topic and lag plumbing; import only the base
    store        fleetlog.store: imports the base and itself
    stages       fleetlog.producers, .processors, .sinks: the base, kafka, themselves -- and the sinks
                 the store; no stage imports another stage
    read side    the facade (``fleetlog``), query, ui, the CLI, runs, script_run, the azureml drop-in...:
                 leaves that may import anything, and that nothing above imports

So a sink or a processor never pays for pandas, and the read side can change without
touching a stage.  A module that fits no part fails :func:`test_every_module_has_a_part`:
say where it belongs here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> the package it installs as (pyproject.toml's package-dir).
SOURCES = {
    "fleetlog": "fleetlog",
    "producers": "fleetlog.producers",
    "processors": "fleetlog.processors",
    "sinks": "fleetlog.sinks",
}

PARTS: dict[str, tuple[str, ...]] = {
    "base": (
        "fleetlog.errors",
        "fleetlog.events",
        "fleetlog.config",
        "fleetlog.retry",
        "fleetlog._status",
        "fleetlog._private",
        "fleetlog.credentials",
        "fleetlog._browser",
    ),
    "kafka": ("fleetlog.topics", "fleetlog.lag"),
    "store": ("fleetlog.store",),
    "producers": ("fleetlog.producers",),
    "processors": ("fleetlog.processors",),
    "sinks": ("fleetlog.sinks",),
    "read": (
        "fleetlog.azureml",
        "fleetlog.query",
        "fleetlog.ui",
        "fleetlog.cli",
        "fleetlog.cli_read",
        "fleetlog.runs",
        "fleetlog.models",
        "fleetlog.cli_models",
        "fleetlog.script_run",
        "fleetlog.jsonable",
        "fleetlog.stack",
        "fleetlog.localkafka",
        "fleetlog.demo",
        "fleetlog.showcase",
        "fleetlog.__main__",
    ),
}
# part -> the parts it may import (its own always)
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "kafka": {"base"},
    "store": {"base"},
    "producers": {"base", "kafka"},
    "processors": {"base", "kafka"},
    "sinks": {"base", "kafka", "store"},
    "read": set(PARTS),
}
HEAVY = (
    "pandas",
    "pyarrow",
    "aiokafka",
    "clickhouse_connect",
    "chdb",
    "starlette",
    "uvicorn",
    "faust",
    "typer",
    "rich",
)


def part_of(module: str) -> str | None:
    if module == "fleetlog":
        return "read"  # the facade loads the public API, read side included
    for part, prefixes in PARTS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return part
    return None


def modules() -> dict[str, Path]:
    """Every module of ours: dotted name -> file."""
    out = {}
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


MODULES = modules()


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module imported)`` for every import statement, at any depth, resolved to our module names."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # ``from fleetlog import query`` imports the module fleetlog.query
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else base


def broken_rules() -> list[str]:
    out = []
    for module, path in MODULES.items():
        part = part_of(module)
        for line, target in imports(module, path):
            if not (target == "fleetlog" or target.startswith("fleetlog.")):
                continue
            other = part_of(target)
            if other is not None and other != part and other not in ALLOWED.get(part or "", set()):
                out.append(f"{path.relative_to(ROOT)}:{line}: {part} module {module} imports {other} module {target}")
    return list(dict.fromkeys(out))  # ``from m import a, b`` is one arrow


def test_every_module_has_a_part() -> None:
    assert [m for m in MODULES if part_of(m) is None] == []


def test_the_parts_import_only_what_they_may() -> None:
    assert broken_rules() == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The rule checker itself: an arrow hidden in a function body is still an arrow."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from fleetlog.ui.notebook import show\n    from . import worker\n")
    assert list(imports("fleetlog.producers.run", path)) == [(2, "fleetlog.ui.notebook"), (3, "fleetlog.producers")]


def test_the_pure_processor_core_never_imports_faust_or_kafka() -> None:
    for module, path in MODULES.items():
        if module.startswith(("fleetlog.processors.core", "fleetlog.processors.pipeline", "fleetlog.processors.emit")):
            heavy = {t for _, t in imports(module, path) if t.split(".")[0] in ("faust", "aiokafka")}
            assert not heavy, f"{module} imports {heavy}"


@pytest.mark.parametrize(
    "statement",
    [
        "import fleetlog.events",
        "import fleetlog.config",
        "import fleetlog.errors",
        "import fleetlog",
        "import fleetlog.processors.core.engine, fleetlog.processors.pipeline",
    ],
)
def test_the_base_loads_nothing_heavy(statement: str) -> None:
    """What importing a piece of the base (or the pure core) really loads, in a fresh interpreter."""
    code = f"import sys, json; {statement}; print(json.dumps(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = json.loads(out.stdout)
    assert sorted({m.split(".")[0] for m in loaded} & set(HEAVY)) == []
    ours = [m for m in loaded if m.startswith("fleetlog.")]
    assert [m for m in ours if part_of(m) not in ("base", "processors")] == []


def test_every_package_is_installed() -> None:
    """A package left out of pyproject.toml's list is missing from the wheel, though tests here pass."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, path in MODULES.items() if path.name == "__init__.py"}
    assert sorted(packages - listed) == []


def test_the_facade_loads_each_public_name_on_first_use() -> None:
    code = (
        "import sys, fleetlog\n"
        "assert 'fleetlog.runs' not in sys.modules and 'pandas' not in sys.modules\n"
        "assert fleetlog.InvalidEvent is __import__('fleetlog.events').events.InvalidEvent\n"
        "assert all(getattr(fleetlog, name) is not None for name in fleetlog.__all__)\n"
        "assert dir(fleetlog) == sorted(fleetlog.__all__) and fleetlog.Run.__module__ == 'fleetlog.runs'\n"
        "try:\n    fleetlog.Nope\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "module 'fleetlog' has no attribute 'Nope'"
