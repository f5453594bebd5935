"""Timing helpers: round-robin runs, so slow drift (thermal, a neighbour's job) hits every variant alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def round_robin(tasks: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds of ``runs`` calls of every task, one call of each in turn, after ``warmup`` calls each."""
    for _ in range(warmup):
        for task in tasks.values():
            task()
    samples: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(runs):
        for name, task in tasks.items():
            t = time.perf_counter()
            task()
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
