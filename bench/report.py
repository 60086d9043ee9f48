"""The results table: one line per figure while running, a Markdown table at the end (docs/performance.md's)."""

from __future__ import annotations

from typing import Any

from bench._common import Row

__all__ = ["fmt", "line", "markdown"]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100_000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def line(row: Row) -> str:
    goal = f"  goal {row.goal}: {_met(row.ok)}" if row.goal else ""
    note = f"  ({row.note})" if row.note else ""
    return f"[{row.section}] {row.name}: {fmt(row.value, row.unit)}{goal}{note}"


def markdown(result: dict[str, Any]) -> str:
    before, after = result["load_before"], result["load_after"]
    head = (
        f"fleetlog bench {result['mode']} run {result['id']}, {result['started']}, {result['seconds']:.0f} s; "
        f"{result['machine']['cores']} cores; load average {before['load1']} before, {after['load1']} after "
        f"(cores busy {before['cpu_busy_percent']:.0f}% / {after['cpu_busy_percent']:.0f}%)"
    )
    lines = [head, "", "| | measure | fleetlog | goal | met | compared / notes |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['section']} | {r['name']} | {fmt(r['value'], r['unit'])} | {r['goal']} | {_met(r['ok'])} | "
            f"{r['note']} |"
        )
    if result.get("failed"):
        lines += ["", "Sections that failed: " + ", ".join(sorted(result["failed"]))]
    return "\n".join(lines)
