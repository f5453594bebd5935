"""The two stages together: detect faces, crop them, classify the crops of a frame in a few batches."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from edgemask.core.classifier import MaskClassifier
from edgemask.core.detectors import Detector, DetectorOptions, load_detector
from edgemask.core.ops.boxes import clamp_box, crop, face_crop_boxes
from edgemask.labels import short_name

DEFAULT_MARGIN = 0.1
"""Face crops grow by this share of the box per side: the classifier was trained on such crops."""
DEFAULT_MIN_FACE = 4
"""Faces narrower or lower than this many pixels carry too little to classify."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Face:
    """One face: ``box`` ``(x1, y1, x2, y2)`` in pixels of the original image, ``label`` ``"mask"`` or
    ``"no_mask"`` with its probability ``score``, the detector's ``face_score``, the five ``landmarks``
    ``((x, y), ...)`` where the detector gives them, and ``crop``, the pixels the classifier saw."""

    box: Box
    label: str
    score: float
    face_score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    crop: Box | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        """The JSON record of ``edgemask-run --json``."""
        d: dict = {
            "box": list(self.box),
            "label": self.label,
            "score": round(self.score, 4),
            "face_score": round(self.face_score, 4),
        }
        if self.landmarks is not None:
            d["landmarks"] = [[round(x, 1), round(y, 1)] for x, y in self.landmarks]
        return d


@dataclass
class Timings:
    """Milliseconds spent in each stage of the last frame."""

    detect: float = 0.0
    classify: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            k: round(v, 2)
            for k, v in (("detect", self.detect), ("classify", self.classify), ("total", self.total))
        }


@dataclass(frozen=True)
class PipelineOptions:
    """Everything below the command line that shapes a pipeline; ``detector`` overrides the file's
    operating point."""

    detector: DetectorOptions = field(default_factory=DetectorOptions)
    margin: float = DEFAULT_MARGIN
    min_face: int = DEFAULT_MIN_FACE
    threads: int = 1


class Pipeline:
    """Detector → crops (grown by ``margin`` on each side, clamped to the image) → classifier.

    Faces whose box is smaller than ``min_face`` pixels on a side are dropped (counted in
    ``skipped_small``).
    """

    def __init__(
        self,
        detector: Detector,
        classifier: MaskClassifier,
        margin: float = DEFAULT_MARGIN,
        min_face: int = DEFAULT_MIN_FACE,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.min_face = min_face
        self.timings = Timings()
        self.skipped_small = 0

    @classmethod
    def from_paths(
        cls,
        detector_path: str | os.PathLike,
        classifier_path: str | os.PathLike,
        options: PipelineOptions | None = None,
    ) -> Pipeline:
        options = options or PipelineOptions()
        detector = load_detector(detector_path, options.detector, options.threads)
        classifier = MaskClassifier(classifier_path, options.threads)
        return cls(detector, classifier, options.margin, options.min_face)

    def infer(self, image: np.ndarray) -> list[Face]:
        t0 = time.perf_counter()
        found = self.detector.detect(image)
        t1 = time.perf_counter()
        h, w = image.shape[:2]
        boxes = clamp_box(found.boxes, w, h).reshape(-1, 4)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = np.flatnonzero(sides >= self.min_face)
        self.skipped_small += len(boxes) - len(big)
        found, boxes = found.take(big), boxes[big]
        crop_boxes = face_crop_boxes(found.boxes, self.margin, w, h)
        probs = self.classifier.infer([crop(image, b) for b in crop_boxes])
        t2 = time.perf_counter()
        self.timings = Timings(detect=(t1 - t0) * 1e3, classify=(t2 - t1) * 1e3, total=(t2 - t0) * 1e3)
        faces = []
        for i, p in enumerate(probs):
            k = int(np.argmax(p))
            landmarks = None
            if found.landmarks is not None:
                landmarks = tuple((float(x), float(y)) for x, y in found.landmarks[i].reshape(-1, 2))
            faces.append(
                Face(
                    as_box(boxes[i]),
                    short_name(self.classifier.labels[k]),
                    float(p[k]),
                    float(found.scores[i]),
                    landmarks,
                    as_box(crop_boxes[i]),
                )
            )
        return faces


def as_box(row: np.ndarray) -> Box:
    x1, y1, x2, y2 = (int(v) for v in row)
    return x1, y1, x2, y2
