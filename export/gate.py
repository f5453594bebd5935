"""The verification gate: an exported file is installed only if, run through the runtime's own classes,
it agrees with its reference.

- Detectors run their family's runtime class at the operating point the file records, on every gate
  scene; each network input it builds is fed to the reference as well (:mod:`edgemask.export.reference`).
  fp32 must give the same detections (every box and landmark within 1 px, every score within 1e-3,
  nothing extra); fp16 and int8 must find >= 98 % of the reference's detections (IoU >= 0.5).
- Classifier, every precision, through ``MaskClassifier``: argmax agrees with Keras on >= 99 % of real
  crops, and accuracy drops by at most 0.5 points on each labelled set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemask.core.classifier import MaskClassifier
from edgemask.core.detectors import Detections, DetectorOptions, load_detector
from edgemask.core.ops.boxes import iou_matrix
from edgemask.evaluation.voc import Scene
from edgemask.export.reference import DetectorReference, KerasReference, median_ms

BOX_TOLERANCE_PX = 1.0
SCORE_TOLERANCE = 1e-3
DETECTION_RECALL = 0.98
AGREEMENT = 0.99
ACCURACY_DROP = 0.005
MATCH_IOU = 0.5
MIN_AGREEMENT_CROPS = 500
CANDIDATE_SLACK = 0.05
"""Detections are collected this far below the threshold, so a box whose score sits right at the
threshold is matched instead of counted as missing."""


@dataclass
class Check:
    """One row of the export report."""

    file: str
    format: str
    size_bytes: int | None
    parity: str = ""
    accuracy: str = ""
    ms: float | None = None
    failures: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    superseded: bool = False  # failed, but a later attempt at the same file was made
    kept: bool = False  # failed, and installed anyway (--keep-failed), the failures in its metadata

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Matching:
    """How one set of detections covers another, pooled over scenes."""

    required: int = 0
    found: int = 0
    extra: int = 0
    box_error: float = 0.0
    landmark_error: float = 0.0
    score_error: float = 0.0

    def add(self, reference: Detections, candidate: Detections, threshold: float, slack: float) -> None:
        """Reference detections >= ``threshold`` must match a candidate >= ``threshold - slack``
        (IoU >= 0.5); candidates >= ``threshold`` without such a reference count as ``extra``."""
        ref = reference.take(np.flatnonzero(reference.scores >= threshold - slack))
        cand = candidate.take(np.flatnonzero(candidate.scores >= threshold - slack))
        ious = iou_matrix(ref.boxes, cand.boxes)
        for i in np.flatnonzero(ref.scores >= threshold):
            self.required += 1
            if ious.shape[1] == 0 or ious[i].max() < MATCH_IOU:
                continue
            j = int(np.argmax(ious[i]))
            self.found += 1
            self.box_error = max(self.box_error, float(np.abs(ref.boxes[i] - cand.boxes[j]).max()))
            self.score_error = max(self.score_error, float(abs(ref.scores[i] - cand.scores[j])))
            if ref.landmarks is not None and cand.landmarks is not None:
                gap = float(np.abs(ref.landmarks[i] - cand.landmarks[j]).max())
                self.landmark_error = max(self.landmark_error, gap)
        for j in np.flatnonzero(cand.scores >= threshold):
            if ious.shape[0] == 0 or ious[:, j].max() < MATCH_IOU:
                self.extra += 1

    @property
    def recall(self) -> float:
        return self.found / self.required if self.required else 1.0


@dataclass
class DetectorGate:
    """One family's reference on the gate scenes at ``threshold``, cached per scene and input size."""

    reference: DetectorReference
    scenes: list[Scene]
    threshold: float
    cache: dict[tuple[int, tuple[int, int]], Detections] = field(default_factory=dict)

    def reference_pass(self, scene_index: int, p) -> Detections:
        key = (scene_index, p.size)
        if key not in self.cache:
            self.cache[key] = self.reference.run_pass(p)
        return self.cache[key]

    def check(self, path: Path, label: str, strict: bool) -> Check:
        """Run ``path`` through its runtime class on every gate scene and compare pass by pass."""
        check = Check(path.name, label, path.stat().st_size)
        detector = load_detector(path, DetectorOptions(conf=self.threshold - CANDIDATE_SLACK), threads=1)
        m = Matching()
        found_faces: list[Detections] = []
        sizes: set[tuple[int, int]] = set()
        for k, scene in enumerate(self.scenes):
            per_scene = []
            for p in detector.passes(scene.image):
                sizes.add(p.size)
                candidate = detector.run_pass(p)
                m.add(
                    self.reference_pass(k, p), candidate, self.threshold, SCORE_TOLERANCE if strict else 0.0
                )
                per_scene.append(candidate)
            found_faces.append(Detections.merge(per_scene, MATCH_IOU) if per_scene else Detections.empty())
        first = detector.passes(self.scenes[0].image)[0]
        check.ms = median_ms(detector.backend.run, first.blob)
        check.numbers.update({"recall": m.recall, "box_err": m.box_error, "refs": m.required})
        shapes = f"{len(sizes)} input shapes"
        if strict:
            errors = f"box ≤{m.box_error:.2f}px, score ≤{m.score_error:.1e}"
            if detector.family == "yunet":
                errors += f", landmarks ≤{m.landmark_error:.2f}px"
            check.parity = f"{m.found}/{m.required} dets ({shapes}), {errors}"
            if m.found < m.required or m.extra:
                check.failures.append(f"{m.required - m.found} missed, {m.extra} extra detections")
            worst_px = max(m.box_error, m.landmark_error)
            if worst_px > BOX_TOLERANCE_PX or m.score_error > SCORE_TOLERANCE:
                check.failures.append(f"{errors} exceeds 1 px / 1e-3")
        else:
            check.parity = f"found {m.found}/{m.required} ({m.recall:.1%}, {shapes})"
            if m.recall < DETECTION_RECALL:
                check.failures.append(f"found only {m.recall:.1%} of the reference's detections (< 98%)")
        check.accuracy = f"faces found {face_recall(found_faces, self.scenes, self.threshold):.1%}"
        return check


def face_recall(found: list[Detections], scenes: list[Scene], threshold: float) -> float:
    """Share of annotated faces with a detection >= ``threshold`` at IoU >= 0.5."""
    hits = total = 0
    for dets, scene in zip(found, scenes, strict=True):
        total += len(scene.boxes)
        kept = dets.boxes[dets.scores >= threshold]
        if len(scene.boxes) and len(kept):
            hits += int((iou_matrix(scene.boxes, kept).max(axis=1) >= MATCH_IOU).sum())
    return hits / total if total else float("nan")


def check_classifier(path: Path, label: str, reference: KerasReference) -> Check:
    """Run ``path`` through the runtime's ``MaskClassifier`` (its channel order and batching) on every
    crop set and compare with Keras."""
    check = Check(path.name, label, path.stat().st_size)
    classifier = MaskClassifier(path, threads=1)
    agree = total = 0
    accuracy = []
    for crop_set, keras_probs in zip(reference.sets, reference.probs, strict=True):
        probs = classifier.infer(list(crop_set.faces))
        predicted, expected = probs.argmax(axis=1), keras_probs.argmax(axis=1)
        agree += int((predicted == expected).sum())
        total += len(predicted)
        labelled = crop_set.labels >= 0
        ours = float((predicted[labelled] == crop_set.labels[labelled]).mean())
        theirs = float((expected[labelled] == crop_set.labels[labelled]).mean())
        accuracy.append(f"{crop_set.name} {ours:.2%} ({(ours - theirs) * 100:+.2f})")
        check.numbers[f"accuracy_{crop_set.name}"] = ours
        if theirs - ours > ACCURACY_DROP:
            drop = (theirs - ours) * 100
            check.failures.append(f"accuracy on {crop_set.name} dropped {drop:.2f} points (> 0.5)")
    rate = agree / total
    check.numbers["agreement"] = rate
    check.parity = f"argmax agrees {rate:.2%} of {total} crops"
    if total < MIN_AGREEMENT_CROPS:
        check.parity += f" (< {MIN_AGREEMENT_CROPS}: a smoke test, not the release gate)"
    check.accuracy = ", ".join(accuracy)
    if rate < AGREEMENT:
        check.failures.append(f"argmax agrees with Keras on only {rate:.2%} of crops (< 99%)")
    check.ms = median_ms(classifier.infer, list(reference.sets[0].faces[:1]))
    return check
