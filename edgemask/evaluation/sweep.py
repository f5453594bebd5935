"""The detector sweep: each family's levers scored on the even and the odd half of a scene set, with the
pipeline's ms per frame beside them, and the rules that pick a setting from the rows.

A setting is only trusted if it meets every accuracy target on both halves (a lever tuned on one half
and confirmed on the other); among those the default is the fastest, and the verdict says whether it is
also :data:`SPEEDUP_TARGET` times faster than the classic recipe. Each pipeline runs once per setting at
the lowest confidence; a higher confidence is the same run with the weaker faces dropped, which equals
running at that threshold because NMS is greedy (a box is only ever suppressed by a higher-scored one,
and those survive any threshold the box survives).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgemask.core.detectors import DetectorOptions, yunet
from edgemask.core.formats import Variant, family_of
from edgemask.evaluation.accuracy import TARGETS
from edgemask.evaluation.detection_metrics import DetectionEvaluator
from edgemask.evaluation.frame_result import FrameResult
from edgemask.evaluation.report import num, pct, table
from edgemask.evaluation.systems import EdgemaskSystem, classifier_for
from edgemask.evaluation.timing import frame_round
from edgemask.evaluation.voc import Scene

SPEEDUP_TARGET = 10.0
HALVES = ("even", "odd")


@dataclass(frozen=True)
class Setting:
    """One point of a detector's grid (``detector``: a model key). ``size``: YuNet's long side or res10's
    squashed pass (None: the runtime's rule); ``small_face_size``: res10's enlarged pass (0 = off; None
    for YuNet); ``nms``: None keeps the file's."""

    detector: str
    size: int | None
    small_face_size: int | None = None
    nms: float | None = None
    margin: float = 0.1

    @property
    def label(self) -> str:
        if self.family == yunet.FAMILY:
            parts = [f"long side {self.size}"]
        else:
            parts = [f"input {self.size or 'auto'}", f"small-face {self.small_face_size or 'off'}"]
        if self.nms is not None:
            parts.append(f"nms {self.nms:g}")
        return ", ".join([*parts, f"margin {self.margin:g}"])

    def system(self, variant: Variant, conf: float, classifier: Variant | None = None) -> EdgemaskSystem:
        options = DetectorOptions(self.size, self.small_face_size, conf, self.nms)
        return EdgemaskSystem(self.detector, variant, options, self.label, self.margin, classifier)

    @property
    def family(self) -> str:
        return family_of(self.detector)


def yunet_grid(
    long_sides: Sequence[int],
    nms_values: Sequence[float | None],
    margins: Sequence[float],
    detector: str = "yunet",
) -> list[Setting]:
    return [Setting(detector, s, None, n, m) for s in long_sides for n in nms_values for m in margins]


def res10_grid(
    input_sizes: Sequence[int], small_face_sizes: Sequence[int], margins: Sequence[float]
) -> list[Setting]:
    return [Setting("res10", i, s, None, m) for i in input_sizes for s in small_face_sizes for m in margins]


@dataclass
class Run:
    """One setting's answers on every scene (at the lowest confidence) and its ms per frame."""

    setting: Setting
    results: list[FrameResult] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def run_grid(
    settings: Sequence[Setting],
    variant: Variant,
    models_dir: Path,
    scenes: Sequence[Scene],
    lowest_conf: dict[str, float],
    extra: dict[str, Callable] | None = None,
    time_every: int = 1,
) -> tuple[list[Run], dict[str, list[float]]]:
    """Every setting's pipeline (1 thread, at its family's lowest confidence) on every scene. Every
    ``time_every``-th scene is timed: all settings in turn with the first place rotating, each timed call
    after an untimed one on the same scene (:func:`edgemask.evaluation.timing.frame_round`), so load drift
    hits every setting alike. ``extra`` timers (e.g. the classic recipe) join the timed scenes only."""
    classifier = classifier_for(variant, models_dir)
    pipelines = {
        s: s.system(variant, lowest_conf[s.family], classifier).pipeline(models_dir, threads=1)
        for s in settings
    }
    runs = {s: Run(s) for s in settings}
    answers: dict[Setting, object] = {}

    def infer(s: Setting, image: np.ndarray) -> None:
        answers[s] = pipelines[s].infer(image)

    extra = extra or {}
    extra_ms: dict[str, list[float]] = {name: [] for name in extra}
    for i, scene in enumerate(tqdm(scenes, desc="sweep", unit="scene", leave=False)):
        tasks: dict = {s: partial(infer, s, scene.image) for s in settings}
        if i % time_every == 0:
            tasks.update({name: partial(fn, scene.image) for name, fn in extra.items()})
        for key, ms in frame_round(tasks, i, time_every).items():
            (runs[key].ms if key in runs else extra_ms[key]).append(ms)
        for s in settings:
            runs[s].results.append(FrameResult.of(answers[s]))
    return list(runs.values()), extra_ms


def half_indices(n: int) -> dict[str, range]:
    """Scene indices of the even and the odd half (by position in name order)."""
    return {"even": range(0, n, 2), "odd": range(1, n, 2)}


def above(result: FrameResult, conf: float) -> FrameResult:
    """The faces a pipeline at threshold ``conf`` keeps (it keeps face scores above the threshold)."""
    keep = result.face_scores > conf
    return FrameResult(result.boxes[keep], result.labels[keep], result.scores[keep], result.face_scores[keep])


def half_summary(
    scenes: Sequence[Scene], results: Sequence[FrameResult], indices: range, conf: float
) -> dict:
    """The numbers of one half at threshold ``conf``."""
    ev = DetectionEvaluator()
    for i in indices:
        r = above(results[i], conf)
        ev.add(scenes[i].boxes, scenes[i].labels, r.boxes, r.labels, r.scores, r.face_scores)
    s = ev.summary()
    return {
        "images": s["images"],
        "map": s["map"],
        "recall": s["recall"],
        "recall_lt16": s["recall_by_size"]["<16"]["recall"],
        "recall_with_mask": s["recall_by_class"]["with_mask"]["recall"],
        "precision": s["precision"],
        "far": s["found_faces"]["far"],
        "frr": s["found_faces"]["frr"],
        "found": s["found_faces"]["n"],
    }


def sweep_rows(runs: Sequence[Run], scenes: Sequence[Scene], confs: dict[str, Sequence[float]]) -> list[dict]:
    """One row per (setting, confidence of its family): each half's numbers and the mean ms per timed
    frame at the lowest confidence (an upper bound for higher ones, which classify fewer faces)."""
    rows = []
    halves = half_indices(len(scenes))
    for run in runs:
        for conf in sorted(confs[run.setting.family]):
            row = {
                "detector": run.setting.detector,
                "setting": run.setting.label,
                "size": run.setting.size,
                "small_face_size": run.setting.small_face_size,
                "nms": run.setting.nms,
                "margin": run.setting.margin,
                "conf": conf,
                "ms": float(np.mean(run.ms)) if run.ms else float("nan"),
            }
            for half, indices in halves.items():
                row[half] = half_summary(scenes, run.results, indices, conf)
            row["meets_targets"] = meets_targets(row)
            rows.append(row)
    return rows


def meets_targets(row: dict) -> bool:
    """Every accuracy target (:data:`~edgemask.evaluation.accuracy.TARGETS`) met on both halves; a half
    with nothing to count (NaN) fails."""
    return all(t.met(row[h][t.key]) for t in TARGETS for h in HALVES)


def half_map(row: dict, half: str) -> float:
    value = row[half]["map"]
    return -1.0 if value is None or math.isnan(value) else value


def worst_half_map(row: dict) -> float:
    return min(half_map(row, h) for h in HALVES)


def describe(row: dict) -> str:
    return f"{row['detector']} {row['setting']}, conf {row['conf']:g}"


def scores(row: dict) -> str:
    return (
        f"mAP {half_map(row, 'even'):.3f}/{half_map(row, 'odd'):.3f}, "
        f"precision {row['even']['precision']:.1%}/{row['odd']['precision']:.1%}, "
        f"FAR {row['even']['far']:.2%}/{row['odd']['far']:.2%}, "
        f"FRR {row['even']['frr']:.2%}/{row['odd']['frr']:.2%} (even/odd), {row['ms']:.1f} ms/frame"
    )


def winner(pool: Sequence[dict], label: str) -> list[str]:
    """The setting with the best mAP on each half of ``pool``; only a setting best on both halves wins
    (ties go to the faster). Otherwise each half's best and the best worst-half mAP are named."""
    if not pool:
        return [f"{label}: no setting qualifies"]
    tops = {h: max(half_map(r, h) for r in pool) for h in HALVES}
    both = [r for r in pool if all(half_map(r, h) == tops[h] for h in HALVES)]
    if both:
        best = min(both, key=lambda r: r["ms"])
        return [f"{label}: {describe(best)} wins both halves ({scores(best)})"]
    lines = []
    for h in HALVES:
        best = min((r for r in pool if half_map(r, h) == tops[h]), key=lambda r: r["ms"])
        lines.append(f"{label}, {h} half only: {describe(best)} ({scores(best)})")
    robust = best_worst_half(pool)
    return [*lines, f"{label}: no setting wins both halves; best worst-half mAP: {describe(robust)}"]


def best_worst_half(pool: Sequence[dict]) -> dict:
    """The row with the highest mAP on its weaker half; ties go to the faster."""
    return max(pool, key=lambda r: (worst_half_map(r), -r["ms"]))


def speedup(row: dict, classic_ms: float | None) -> str:
    """How many times faster than the classic recipe, and whether that meets :data:`SPEEDUP_TARGET`."""
    if classic_ms is None:
        return "speed against the classic recipe unknown (--classic-ms or the peers)"
    times = classic_ms / row["ms"]
    met = "meets" if times >= SPEEDUP_TARGET else "misses"
    return f"{times:.1f}x the classic recipe's speed ({met} the {SPEEDUP_TARGET:g}x target)"


def choose_default(rows: Sequence[dict]) -> dict | None:
    """The default: the fastest row meeting every target on both halves; among equally fast rows (one
    run at several confidences) the best worst-half mAP. Targets are floors, speed is what is bought."""
    pool = [r for r in rows if r["meets_targets"]]
    return min(pool, key=lambda r: (r["ms"], -worst_half_map(r))) if pool else None


def verdict_lines(rows: Sequence[dict], classic_ms: float | None) -> list[str]:
    """Per family the both-halves winner among rows meeting the targets and the best worst half at any
    rate, then the default across families with its speed against the classic recipe."""
    targets = "every target on both halves"
    lines = []
    for detector in dict.fromkeys(r["detector"] for r in rows):
        mine = [r for r in rows if r["detector"] == detector]
        lines += winner([r for r in mine if r["meets_targets"]], f"{detector}: best mAP meeting {targets}")
        best = best_worst_half(mine)
        lines.append(f"{detector}: best worst-half mAP at any rate: {describe(best)} ({scores(best)})")
    chosen = choose_default(rows)
    if chosen is None:
        return [*lines, f"DEFAULT: no setting meets {targets}"]
    return [
        *lines,
        f"DEFAULT: {describe(chosen)}: the fastest setting meeting {targets}; {scores(chosen)}, "
        f"{speedup(chosen, classic_ms)}",
    ]


def sweep_table(rows: Sequence[dict]) -> list[str]:
    """One line per row; each number as even/odd half."""
    columns = [
        "detector", "setting", "conf", "mAP@0.5", "faces found", "<16 px", "masked found", "precision",
        "FAR (found)", "FRR (found)", "ms/frame*", "meets targets",
    ]  # fmt: skip

    def pair(row: dict, key: str, cell: Callable[[float], str]) -> str:
        return f"{cell(row['even'][key])} / {cell(row['odd'][key])}"

    lines = []
    for r in rows:
        lines.append(
            [
                r["detector"],
                r["setting"],
                f"{r['conf']:g}",
                pair(r, "map", num),
                pair(r, "recall", pct),
                pair(r, "recall_lt16", pct),
                pair(r, "recall_with_mask", pct),
                pair(r, "precision", pct),
                pair(r, "far", pct),
                pair(r, "frr", pct),
                f"{r['ms']:.1f}",
                "yes" if r["meets_targets"] else "no",
            ]
        )
    return table(columns, lines, left=2)
