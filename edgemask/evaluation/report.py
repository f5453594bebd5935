"""How the benchmarks report: Markdown cells and tables, PASS/FAIL lines, JSON files and PNG charts.

JSON files hold NaN (nothing to count) as null, so strict readers accept them. Charts import matplotlib
only when asked for (it is a workstation extra).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemask.labels import LABELS, short_name


def plain(obj):
    """``obj`` with NaN/inf floats as None, tuples as lists and paths as strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(plain(obj), indent=2, allow_nan=False) + "\n")


def missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None) -> str:
    return "–" if missing(x) else f"{x:.1%}"


def num(x: float | None, digits: int = 3) -> str:
    return "–" if missing(x) else f"{x:.{digits}f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def rate(metrics: dict, true_class: int) -> str:
    """FAR (true class 1, unmasked, called masked) or FRR (true class 0 called unmasked) with its counts."""
    row = metrics["confusion"][true_class]
    value = metrics["far"] if true_class == 1 else metrics["frr"]
    return f"{pct(value)} ({row[1 - true_class]}/{sum(row)})"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns (names) left-aligned, the others (numbers) right."""
    align = ["---"] * left + ["---:"] * (len(columns) - left)
    return [f"| {' | '.join(columns)} |", f"|{'|'.join(align)}|"] + [f"| {' | '.join(r)} |" for r in rows]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


LINE_STYLES = ("-", "--", "-.", ":")
"""Systems that score alike (one family's file variants) draw on top of each other: the dash tells them
apart where the colour is hidden."""


def plot_pr(curves: dict[str, dict[str, tuple]], ap: dict[str, dict], path: Path, title: str = "") -> None:
    """Precision-recall per class: ``curves[system][label] = (recall, precision)``, ``ap[system][label]``.
    Each curve ends at the system's operating point (every face it reports), marked with a dot."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(LABELS), figsize=(14, 6.5), dpi=110, sharey=True)
    for i, (name, per_label) in enumerate(curves.items()):
        style = {"color": f"C{i % 10}", "linestyle": LINE_STYLES[i % len(LINE_STYLES)], "linewidth": 1.6}
        for ax, label in zip(axes, LABELS, strict=True):
            recall, precision = per_label[label]
            line_label = f"{name}: AP {num(ap[name][label])}"
            ax.plot(recall, precision, label=line_label, **style)
            if len(recall):
                ax.plot(recall[-1], precision[-1], "o", color=style["color"], markersize=4)
    for ax, label in zip(axes, LABELS, strict=True):
        ax.set_title(f"{short_name(label)} ({label})", fontsize=12)
        ax.set_xlabel("recall (share of the class's faces found with that label)", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    axes[0].set_ylabel("precision", fontsize=10)
    fig.suptitle(
        (f"{title}: " if title else "")
        + "precision-recall per class at IoU 0.5, ranked by face score × class probability; "
        "dot = operating point",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(models: list[dict], end_to_end: list[dict], title: str, path: Path) -> None:
    """Bars: median ms per model file and thread count (left), mean ms per frame end to end (right)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), dpi=110)
    ax = axes[0]
    labels = list(dict.fromkeys(f"{r['model']}\n{r['format']}" for r in models))
    threads = sorted({r["threads"] for r in models})
    width = 0.8 / max(1, len(threads))
    for i, t in enumerate(threads):
        values = {f"{r['model']}\n{r['format']}": r["median"] for r in models if r["threads"] == t}
        x = np.arange(len(labels)) + i * width
        ax.bar(x, [values.get(k, 0) for k in labels], width, label=f"{t} thread(s)")
    ax.set_xticks(np.arange(len(labels)) + width * (len(threads) - 1) / 2, labels, fontsize=6, rotation=60)
    ax.set_ylabel("median ms per frame (detector: all passes; classifier: one face)")
    ax.set_title("Per model file")
    if models:
        ax.legend()
    ax = axes[1]
    names, means = [r["system"] for r in end_to_end], [r["mean"] for r in end_to_end]
    ax.barh(names[::-1], means[::-1], color="tab:orange")
    ax.set_xscale("log")
    ax.set_xlabel("mean ms per frame (log scale)")
    ax.set_title("End to end on real frames")
    ax.tick_params(axis="y", labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
