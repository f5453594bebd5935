"""End-to-end accuracy of every system on the same scenes, the classifiers alone on ground-truth crops,
and issue #10's targets for the default pipeline.

Detection numbers follow :mod:`edgemask.evaluation.detection_metrics` (PASCAL VOC, IoU 0.5). AP ranks
detections by face score × class probability (AIZOO: its class score).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgemask.core.classifier import MaskClassifier
from edgemask.core.detectors import DetectorOptions
from edgemask.core.formats import Variant
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.evaluation.detection_metrics import SIZE_BINS, DetectionEvaluator
from edgemask.evaluation.frame_result import FrameResult
from edgemask.evaluation.metrics import classification_metrics
from edgemask.evaluation.report import num, pct, rate, table, verdict
from edgemask.evaluation.systems import default_system
from edgemask.evaluation.timing import frame_round
from edgemask.evaluation.voc import Scene
from edgemask.labels import LABELS, short_name

CROP_BATCH = 64
DEFAULT_SYSTEM = default_system()
"""What ``edgemask-run`` runs by default on this CPU; the targets are checked on it."""


@dataclass(frozen=True)
class Target:
    """One of issue #10's accuracy targets: read from the default pipeline's summary (``value``) and from
    a sweep half's flat record (``key``), so the check and the sweep's rule share one bound."""

    what: str
    key: str
    value: Callable[[dict], float]
    compare: Callable[[float, float], bool]
    bound: float
    percent: bool = True

    def met(self, value: float | None) -> bool:
        """NaN or a missing value never meets a target."""
        return value is not None and value == value and self.compare(value, self.bound)

    def line(self, summary: dict) -> str:
        value = self.value(summary)
        shown = pct(value) if self.percent else num(value)
        bound = f"{self.bound:.0%}" if self.percent else f"{self.bound:g}"
        sign = ">=" if self.compare is operator.ge else "<="
        return f"{verdict(self.met(value))}: {self.what} {shown} (target {sign} {bound})"


TARGETS = (
    Target("mAP@0.5", "map", lambda s: s["map"], operator.ge, 0.70, percent=False),
    Target("faces found", "recall", lambda s: s["recall"], operator.ge, 0.78),
    Target(
        "faces < 16 px found",
        "recall_lt16",
        lambda s: s["recall_by_size"]["<16"]["recall"],
        operator.ge,
        0.55,
    ),
    Target("FAR on found faces", "far", lambda s: s["found_faces"]["far"], operator.le, 0.02),
    Target("FRR on found faces", "frr", lambda s: s["found_faces"]["frr"], operator.le, 0.03),
    # Not in the list but asked for in its text: a detector tuned for tiny-face recall must not
    # pay for it in boxes on hands and patterns; at 0.70 at most 3 in 10 reported faces are unmatched.
    Target("precision", "precision", lambda s: s["precision"], operator.ge, 0.70),
)


def family_options(
    family: str, conf: float | None, size: int | None, small_face_size: int | None
) -> tuple[DetectorOptions, str]:
    """A family's overrides of its files' operating point and how tables name them (small-face pass is
    res10's alone)."""
    small = small_face_size if family == "res10" else None
    parts = [f"conf {conf:g}" if conf is not None else "", f"size {size}" if size else ""]
    if small is not None:
        parts.append(f"small-face {small or 'off'}")
    return DetectorOptions(size, small, conf), ", ".join(p for p in parts if p)


def compare(
    systems: dict[str, Callable], scenes: Sequence[Scene], time_every: int = 1
) -> tuple[dict, dict, int]:
    """Every system on every scene; every ``time_every``-th scene timed, all systems in turn with the first
    place rotating (:func:`edgemask.evaluation.timing.frame_round`). Evaluators, mean ms per timed frame
    and the number of timed frames."""
    evaluators = {name: DetectionEvaluator() for name in systems}
    samples: dict[str, list[float]] = {name: [] for name in systems}
    answers: dict[str, object] = {}

    def infer(name: str, image: np.ndarray) -> None:
        answers[name] = systems[name](image)

    for i, scene in enumerate(tqdm(scenes, desc="scenes", unit="img", leave=False)):
        tasks = {name: partial(infer, name, scene.image) for name in systems}
        for name, ms in frame_round(tasks, i, time_every).items():
            samples[name].append(ms)
        for name in systems:
            r = FrameResult.of(answers[name])
            evaluators[name].add(scene.boxes, scene.labels, r.boxes, r.labels, r.scores, r.face_scores)
    ms = {name: float(np.mean(s)) if s else float("nan") for name, s in samples.items()}
    return evaluators, ms, len(next(iter(samples.values()), []))


def ground_truth_crops(scenes: Sequence[Scene], margin: float) -> tuple[list[np.ndarray], np.ndarray]:
    """The scored faces (``with_mask``/``without_mask``, not ``difficult``) cut by the runtime's crop rule
    with ``margin``, and their label indices: the faces the detection table counts."""
    faces, labels = [], []
    for scene in scenes:
        scored = np.flatnonzero(scene.labels >= 0)
        h, w = scene.image.shape[:2]
        for i, box in zip(scored, face_crop_boxes(scene.boxes[scored], margin, w, h), strict=True):
            faces.append(crop(scene.image, box))
            labels.append(int(scene.labels[i]))
    return faces, np.asarray(labels, dtype=np.int64)


def edgemask_classifiers(models_dir: Path, variants: Sequence[Variant], threads: int) -> dict[str, Callable]:
    """Name → ``infer(faces_bgr) -> (N, 2)`` for each variant's classifier file that exists."""
    found = {}
    for v in variants:
        path = v.path(models_dir, "classifier")
        if path.is_file():
            found[f"edgemask classifier {v.name}"] = MaskClassifier(path, threads).infer
    return found


def pyimagesearch_classifier(keras_file: Path, threads: int) -> Callable:
    from edgemask.evaluation.peers import load_pyimagesearch, pyimagesearch_input

    model = load_pyimagesearch(keras_file, threads)

    def infer(faces: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(model(np.stack([pyimagesearch_input(f) for f in faces]), training=False))

    return infer


def classify_crops(classifiers: dict[str, Callable], faces: list, labels: np.ndarray) -> dict:
    results = {}
    for name, infer in classifiers.items():
        probs = [infer(faces[i : i + CROP_BATCH]) for i in range(0, len(faces), CROP_BATCH)]
        predicted = np.argmax(np.concatenate(probs), axis=1) if probs else np.zeros(0, dtype=np.int64)
        results[name] = classification_metrics(labels, predicted)
    return results


def target_lines(summaries: dict, default_name: str) -> list[str]:
    """PASS/FAIL per target of issue #10 on the default pipeline (DEFAULT_DETECTOR, int8 TFLite)."""
    summary = summaries.get(default_name)
    if summary is None:
        return [f"NOT CHECKED: issue #10 targets need {default_name} (its files, and not filtered out)"]
    return [f"{default_name}: {t.line(summary)}" for t in TARGETS]


def detection_table(summaries: dict, ms: dict, threads: int) -> list[str]:
    columns = [
        "system", "mAP@0.5", "AP mask", "AP no-mask", "faces found", *(f"{b} px" for b, _, _ in SIZE_BINS),
        "masked found", "precision", "FAR (found)", "FRR (found)", "found faces", f"ms/frame ({threads} thr)",
    ]  # fmt: skip
    rows = []
    for name, s in summaries.items():
        size, found = s["recall_by_size"], s["found_faces"]
        rows.append(
            [
                name,
                num(s["map"]),
                num(s["ap"]["with_mask"]),
                num(s["ap"]["without_mask"]),
                pct(s["recall"]),
                *(pct(size[b]["recall"]) for b, _, _ in SIZE_BINS),
                pct(s["recall_by_class"]["with_mask"]["recall"]),
                pct(s["precision"]),
                rate(found, 1),
                rate(found, 0),
                str(found["n"]),
                f"{ms[name]:.1f}",
            ]
        )
    return table(columns, rows)


def per_class_table(summaries: dict) -> list[str]:
    """Per system and class: AP, recall and precision with that label at the operating point, and the
    share of the class's faces found whatever their label, overall and by width."""
    columns = [
        "system", "class", "AP@0.5", "recall", "precision", "found (any label)",
        *(f"found {b} px" for b, _, _ in SIZE_BINS),
    ]  # fmt: skip
    rows = []
    for name, s in summaries.items():
        for label in LABELS:
            rates, size = s["per_class"][label], s["recall_by_class_and_size"][label]
            rows.append(
                [
                    name,
                    short_name(label),
                    num(s["ap"][label]),
                    f"{pct(rates['recall'])} ({rates['true_positives']}/{rates['faces']})",
                    f"{pct(rates['precision'])} ({rates['true_positives']}/{rates['detections']})",
                    pct(s["recall_by_class"][label]["recall"]),
                    *(f"{pct(size[b]['recall'])} ({size[b]['faces']})" for b, _, _ in SIZE_BINS),
                ]
            )
    return table(columns, rows, left=2)


def crops_table(results: dict) -> list[str]:
    rows = [[name, str(m["n"]), pct(m["accuracy"]), rate(m, 1), rate(m, 0)] for name, m in results.items()]
    return table(["classifier", "crops", "accuracy", "FAR", "FRR"], rows)


def face_counts(summary: dict) -> str:
    size = summary["recall_by_size"]
    bins = ", ".join(f"{k} px: {v['faces']}" for k, v in size.items())
    by_class = ", ".join(f"{k}: {v['faces']}" for k, v in summary["recall_by_class"].items())
    return f"{summary['faces']} scored faces ({by_class}; {bins}), {summary['ignored_faces']} ignored"


def pr_curves(evaluators: dict[str, DetectionEvaluator]) -> tuple[dict, dict]:
    """``(curves, ap)`` per system for :func:`edgemask.evaluation.report.plot_pr`."""
    curves = {name: ev.pr_curves() for name, ev in evaluators.items()}
    ap = {name: ev.summary()["ap"] for name, ev in evaluators.items()}
    return curves, {name: {label: ap[name][label] for label in LABELS} for name in ap}
