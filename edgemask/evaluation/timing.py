"""Timing helpers: round-robin runs, so slow drift (thermal, a neighbour's job) hits every variant alike.

Frame loops time a frame with :func:`frame_round`: the runtimes plan their graph for each new input shape
(LiteRT resizes and re-allocates its interpreter, :mod:`edgemask.core.backends`), and frames of a folder
of photos come in many sizes, while a camera's share one. One untimed call on the frame first makes every
number the steady state of that frame size, as a camera would see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def round_robin(
    tasks: dict[str, Callable[[], object]], runs: int, warmup: int = 2, start: int = 0
) -> dict[str, list[float]]:
    """Milliseconds of ``runs`` calls of every task, one call of each in turn, after ``warmup`` calls each.

    Run ``r`` starts at task ``start + r`` (cyclically): going first on new input costs measurably more
    (on the benchmark machine 93 vs 71 vs 62 ms for three identical pipelines), so every task takes every
    place equally often."""
    for _ in range(warmup):
        for task in tasks.values():
            task()
    names = list(tasks)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        k = (start + r) % len(names) if names else 0
        for name in names[k:] + names[:k]:
            t = time.perf_counter()
            tasks[name]()
            samples[name].append((time.perf_counter() - t) * 1e3)
    return samples


def stats_ms(samples: list[float]) -> dict[str, float]:
    """Median, 90th percentile, minimum and mean of millisecond samples."""
    a = np.asarray(samples, dtype=np.float64)
    return {
        "median": float(np.median(a)),
        "p90": float(np.percentile(a, 90)),
        "min": float(a.min()),
        "mean": float(a.mean()),
        "n": len(a),
    }


def frame_round(tasks: dict[str, Callable[[], object]], index: int, every: int = 1) -> dict[str, float]:
    """Frame ``index`` of a loop: every task once. Every ``every``-th frame is timed: each task is called
    untimed, then timed, in turn with the first place rotating; returns ms per task (empty if untimed)."""
    if index % every:
        for task in tasks.values():
            task()
        return {}
    return {name: ms[0] for name, ms in round_robin(tasks, runs=1, warmup=1, start=index // every).items()}
