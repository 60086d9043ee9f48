"""The README is the front door and docs/ the house behind it: short, and no link that leads nowhere.

A moved page or a renamed heading breaks links silently on GitHub; this test finds them, anchors
included (GitHub's heading slugs), in README.md and every page of docs/.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks (a ``#`` comment in a code block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page offers; a repeated heading gets GitHub's -1, -2... suffixes."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text()):
        match = _HEADING.match(line)
        if match:
            slug = _slug(match.group(2))
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file, or whose anchor in a Markdown file, does not exist."""
    broken = []
    for line in _prose(page.read_text()):
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = unquote(target).partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{target} (no file {_shown(resolved)})")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{target} (no heading #{anchor} in {_shown(resolved)})")
    return broken


def test_the_readme_is_short_and_shows_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "move detail into docs/ and link to it"
    assert "make demo" in text and "make test" in text


def test_the_readme_links_every_page_of_the_docs():
    text = README.read_text()
    assert [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in text] == []


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path):
    assert broken_links(page) == []


def test_the_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## A `code` heading: yes\n\n[ok](#a-code-heading-yes) [bad](#nope) [gone](missing.md)\n")
    assert anchors(page) == {"top", "a-code-heading-yes"}
    assert [b.split(" ")[0] for b in broken_links(page)] == ["#nope", "missing.md"]
