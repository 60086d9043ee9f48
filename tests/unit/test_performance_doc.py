"""docs/performance.md's tables are what ``python -m bench.docs`` makes of the published bench run.

Nobody edits a figure by hand: a committed table that differs from the script's output for the
committed ``bench/results/published.json`` fails here, in a fresh clone as on a developer's machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import docs


def test_the_committed_tables_are_the_published_runs():
    assert docs.PUBLISHED.exists(), "bench/results/published.json must be committed (see .gitignore)"
    assert docs.check(), "docs/performance.md is stale: run `python -m bench.docs`"


def test_a_figure_edited_by_hand_is_caught(tmp_path: Path):
    doc = tmp_path / "performance.md"
    separator = "|---|---|---|---|---|\n"
    doc.write_text(docs.DOC.read_text().replace(separator, separator + "| a better figure | 0.01 µs |  |  |  |\n", 1))
    assert doc.read_text() != docs.DOC.read_text()
    assert not docs.check(docs.PUBLISHED, doc)
    docs.write(docs.PUBLISHED, doc)
    assert docs.check(docs.PUBLISHED, doc) and doc.read_text() == docs.DOC.read_text()


def _result(**changes: object) -> dict:
    row = {"section": "1 hot path", "name": "run.log", "value": 0.5, "unit": "µs", "goal": "", "ok": None, "note": ""}
    result = {"id": "x", "mode": "full", "rows": [row], "failed": {}}
    result.update(changes)
    return result


def test_publish_copies_a_full_run_and_rewrites_the_tables(tmp_path: Path):
    latest, published, doc = tmp_path / "latest.json", tmp_path / "published.json", tmp_path / "performance.md"
    latest.write_text(json.dumps(_result()))
    doc.write_text(f"# Performance\n\n{docs.BEGIN}\nold\n{docs.END}\n\nprose\n")
    docs.publish(latest, published, doc)
    assert json.loads(published.read_text()) == _result()
    assert "| run.log | 0.50 µs |" in doc.read_text() and "old" not in doc.read_text()
    assert doc.read_text().endswith(f"{docs.END}\n\nprose\n")


@pytest.mark.parametrize(
    ("changes", "why"), [({"mode": "quick"}, "'quick' run"), ({"failed": {"e2e": "boom"}}, "failed")]
)
def test_publish_refuses_quick_and_failed_runs(tmp_path: Path, changes: dict, why: str):
    latest = tmp_path / "latest.json"
    latest.write_text(json.dumps(_result(**changes)))
    with pytest.raises(docs.PublishError, match=why):
        docs.publish(latest, tmp_path / "published.json", tmp_path / "doc.md")
    assert not (tmp_path / "published.json").exists()


def test_tables_follow_the_section_numbers_and_a_pipe_cannot_split_a_row():
    rows = [
        {"section": "2 throughput", "name": "b", "value": 1, "unit": "", "note": "x | y"},
        {"section": "1 hot path", "name": "a", "value": 2, "unit": ""},
    ]
    text = docs.render({"id": "r", "mode": "full", "rows": rows})
    assert text.index("### 1. Hot path") < text.index("### 2. Throughput")
    assert "| b | 1.00 |  |  | x \\| y |" in text
