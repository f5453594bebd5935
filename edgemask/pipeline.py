"""The two stages together: detect faces, crop them, classify all crops of a frame as one batch."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from edgemask.classifier import MaskClassifier
from edgemask.detector import DEFAULT_SMALL_FACE_SIZE, FaceDetector
from edgemask.preprocess import clamp_box, crop, expand_box

LABEL_NAMES = {"with_mask": "mask", "without_mask": "no_mask"}
"""Classifier labels as reported to users."""


@dataclass(frozen=True)
class Face:
    """One face: ``box`` ``(x1, y1, x2, y2)`` in pixels of the original image, ``label`` ``"mask"`` or
    ``"no_mask"`` with its probability ``score``, and the detector's ``face_score``."""

    box: tuple[int, int, int, int]
    label: str
    score: float
    face_score: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        d["score"] = round(self.score, 4)
        d["face_score"] = round(self.face_score, 4)
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


class Pipeline:
    """Detector → crops (grown by ``margin`` on each side, clamped to the image) → classifier.

    Faces whose box is smaller than ``min_face`` pixels on a side carry too little to classify and are
    dropped (counted in ``skipped_small``).
    """

    def __init__(
        self, detector: FaceDetector, classifier: MaskClassifier, margin: float = 0.1, min_face: int = 4
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
        threads: int = 1,
        conf_threshold: float | None = None,
        nms_threshold: float | None = None,
        input_size: int | None = None,
        small_face_size: int | None = DEFAULT_SMALL_FACE_SIZE,
        **pipeline_options,
    ) -> Pipeline:
        detector = FaceDetector(
            detector_path, conf_threshold, nms_threshold, input_size, small_face_size, threads=threads
        )
        return cls(detector, MaskClassifier(classifier_path, threads), **pipeline_options)

    def infer(self, image: np.ndarray) -> list[Face]:
        t0 = time.perf_counter()
        dets = self.detector.infer(image)
        t1 = time.perf_counter()
        h, w = image.shape[:2]
        boxes = clamp_box(dets[:, :4], w, h)
        big = ((boxes[:, 2] - boxes[:, 0]) >= self.min_face) & ((boxes[:, 3] - boxes[:, 1]) >= self.min_face)
        self.skipped_small += int((~big).sum())
        dets, boxes = dets[big], boxes[big]
        crops = [crop(image, b) for b in clamp_box(expand_box(dets[:, :4], self.margin), w, h)]
        probs = self.classifier.infer(crops)
        t2 = time.perf_counter()
        self.timings = Timings(detect=(t1 - t0) * 1e3, classify=(t2 - t1) * 1e3, total=(t2 - t0) * 1e3)
        labels = self.classifier.labels
        faces = []
        for box, det, p in zip(boxes, dets, probs, strict=True):
            k = int(np.argmax(p))
            faces.append(
                Face(
                    tuple(int(v) for v in box),
                    LABEL_NAMES.get(labels[k], labels[k]),
                    float(p[k]),
                    float(det[4]),
                )
            )
        return faces
