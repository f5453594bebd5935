"""The export report: one table row per file (format, size, parity, accuracy, speed, gate verdict)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from edgemask.export.gate import Check


def file_size(size: int | None) -> str:
    if size is None:
        return "—"
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def milliseconds(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def markdown_table(checks: Sequence[Check]) -> str:
    """A Markdown table; failing rows name what failed."""
    rows = [
        "| Format | File | Size | Parity with reference | Accuracy | ms / inference (1 thread) | Gate |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        verdict = "pass" if c.passed else "FAIL: " + "; ".join(c.failures)
        if c.superseded:
            verdict += " (retried below)"
        if c.format.endswith("(reference)"):
            verdict = "reference"
        rows.append(
            f"| {c.format} | {c.file} | {file_size(c.size_bytes)} | {c.parity or '—'} | {c.accuracy or '—'} "
            f"| {milliseconds(c.ms)} | {verdict} |"
        )
    return "\n".join(rows)


def json_report(checks: Sequence[Check]) -> str:
    return json.dumps([{**asdict(c), "passed": c.passed} for c in checks], indent=2)
