"""The verification gate: an exported file is installed only if, run through the runtime's own loader,
it agrees with its reference.

- Detector, fp32: the same detections as OpenCV's Caffe importer (every box within 1 px, every score
  within 1e-3, nothing extra) at each gate size (default 300×300 and 640×480, the runtime's passes).
- Detector, fp16/int8: finds >= 98 % of OpenCV's detections (IoU >= 0.5) at :data:`GATE_CONFIDENCE`.
- Classifier, every precision: argmax agrees with Keras on >= 99 % of real crops, and accuracy drops
  by at most 0.5 points on each labelled set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgemask.backends import Backend, load_backend
from edgemask.detector import split_outputs
from edgemask.ssd import detection_output, iou_matrix, prior_boxes
from export.reference import KerasReference, OpenCVReference

BOX_TOLERANCE_PX = 1.0
SCORE_TOLERANCE = 1e-3
DETECTION_RECALL = 0.98
AGREEMENT = 0.99
ACCURACY_DROP = 0.005
MATCH_IOU = 0.5
MIN_AGREEMENT_CROPS = 500
TIMING_RUNS = 20
GATE_CONFIDENCE = 0.5
"""Detector parity is checked on OpenCV's detections at its sample's threshold, whatever operating point
the runtime defaults to (weaker boxes are scored end to end by benchmarks/accuracy.py)."""
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
    score_error: float = 0.0

    def add(self, reference: np.ndarray, candidate: np.ndarray, threshold: float, slack: float) -> None:
        """Reference detections >= ``threshold`` must match a candidate >= ``threshold - slack``
        (IoU >= 0.5); candidates >= ``threshold`` without such a reference count as ``extra``."""
        ref = reference[reference[:, 4] >= threshold - slack]
        cand = candidate[candidate[:, 4] >= threshold - slack]
        ious = iou_matrix(ref[:, :4], cand[:, :4])
        for i in np.flatnonzero(ref[:, 4] >= threshold):
            self.required += 1
            if ious.shape[1] == 0 or ious[i].max() < MATCH_IOU:
                continue
            j = int(np.argmax(ious[i]))
            self.found += 1
            self.box_error = max(self.box_error, float(np.abs(ref[i, :4] - cand[j, :4]).max()))
            self.score_error = max(self.score_error, float(abs(ref[i, 4] - cand[j, 4])))
        for j in np.flatnonzero(cand[:, 4] >= threshold):
            if ious.shape[0] == 0 or ious[:, j].max() < MATCH_IOU:
                self.extra += 1

    @property
    def recall(self) -> float:
        return self.found / self.required if self.required else 1.0


class ExactSizeDetector:
    """The runtime's SSD pieces at one exact ``(h, w)``, fed as OpenCV's reference is fed.

    :class:`edgemask.detector.FaceDetector` picks its own (square, multi-pass) sizes; the gate needs
    every input size, square or not, compared one to one.
    """

    def __init__(self, backend: Backend, size: tuple[int, int]) -> None:
        self.backend, self.size = backend, size
        self.priors = prior_boxes(backend.meta.ssd, size)

    def infer(self, image: np.ndarray, threshold: float) -> np.ndarray:
        h, w = self.size
        blob = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.backend.meta.channel_order == "RGB":
            blob = cv2.cvtColor(blob, cv2.COLOR_BGR2RGB)
        loc, conf = split_outputs(self.backend.run(blob[None]))
        dets = detection_output(loc, conf, self.priors, self.backend.meta.ssd, threshold)
        dets[:, :4] *= np.array([image.shape[1], image.shape[0]] * 2, np.float32)
        return dets


def face_recall(detections: list[np.ndarray], scenes, threshold: float) -> float:
    """Share of ground-truth faces with a detection >= ``threshold`` at IoU >= 0.5."""
    hits = total = 0
    for dets, scene in zip(detections, scenes, strict=True):
        total += len(scene.faces)
        kept = dets[dets[:, 4] >= threshold]
        if len(scene.faces) and len(kept):
            hits += int((iou_matrix(scene.faces, kept[:, :4]).max(axis=1) >= MATCH_IOU).sum())
    return hits / total if total else float("nan")


def median_ms(run, x: np.ndarray, runs: int = TIMING_RUNS) -> float:
    run(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def check_detector(
    path: Path,
    label: str,
    reference: OpenCVReference,
    sizes: list[tuple[int, int]],
    threshold: float,
    strict: bool,
) -> Check:
    """Run ``path`` through the runtime's backend and SSD code on every gate scene and size."""
    check = Check(path.name, label, path.stat().st_size)
    backend = load_backend(path, threads=1)
    fixed = backend.meta.input_size
    if None not in fixed:
        sizes = [tuple(fixed)]  # type: ignore[list-item]
    check.ms = median_ms(backend.run, np.full((1, *sizes[0], 3), 127, np.uint8))
    parity, recall = [], []
    for size in sizes:
        detector = ExactSizeDetector(backend, size)
        candidates = [detector.infer(scene.image, threshold - CANDIDATE_SLACK) for scene in reference.scenes]
        m = Matching()
        for ref, cand in zip(reference.detections(size), candidates, strict=True):
            m.add(ref, cand, threshold, SCORE_TOLERANCE if strict else 0.0)
        tag = size_text(size)
        check.numbers.update(
            {f"recall_{tag}": m.recall, f"box_err_{tag}": m.box_error, f"refs_{tag}": m.required}
        )
        if strict:
            errors = f"box ≤{m.box_error:.2f}px, score ≤{m.score_error:.1e}"
            parity.append(f"{tag}: {m.found}/{m.required} dets, {errors}")
            if m.found < m.required or m.extra:
                missed = m.required - m.found
                check.failures.append(f"{tag}: {missed} missed, {m.extra} extra detections vs OpenCV")
            if m.box_error > BOX_TOLERANCE_PX or m.score_error > SCORE_TOLERANCE:
                check.failures.append(f"{tag}: {errors} exceeds 1 px / 1e-3")
        else:
            parity.append(f"{tag}: found {m.found}/{m.required} ({m.recall:.1%})")
            if m.recall < DETECTION_RECALL:
                check.failures.append(f"{tag}: found only {m.recall:.1%} of OpenCV's detections (< 98%)")
        recall.append(f"{tag}: {face_recall(candidates, reference.scenes, threshold):.1%}")
    check.parity = "; ".join(parity)
    check.accuracy = "faces found " + ", ".join(recall)
    return check


def check_classifier(path: Path, label: str, reference: KerasReference) -> Check:
    """Run ``path`` through the runtime backend on every crop set and compare with Keras."""
    check = Check(path.name, label, path.stat().st_size)
    backend = load_backend(path, threads=1)
    agree = total = 0
    accuracy = []
    for crop_set, keras_probs in zip(reference.sets, reference.probs, strict=True):
        probs = np.concatenate(
            [backend.run(crop_set.images[i : i + 64])[0] for i in range(0, len(crop_set.images), 64)]
        )
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
    check.ms = median_ms(backend.run, reference.sets[0].images[:1])
    return check
