"""The two stages together: detect faces, crop them, classify the crops of a frame in a few batches.

:class:`FramePipeline` is the contract the frame loop, the benchmarks and a tracker build on: ``infer``
answers one :class:`FrameResult`. :class:`Pipeline` also offers the two halves apart (``detect`` and
``classify``), so a tracker can skip the classifier for faces whose label is settled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
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
    track: int | None = None
    """The person's track id in a video (None when frames are judged alone)."""
    track_label: str | None = None
    """The label the person's whole track votes for, steadier than one frame's ``label``."""
    track_score: float | None = None

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
        if self.track is not None:
            d["track"] = self.track
            d["track_label"] = self.track_label
            d["track_score"] = None if self.track_score is None else round(self.track_score, 4)
        return d


@dataclass(frozen=True)
class Detected:
    """A face found but not yet classified: its box, the detector's score, landmarks where the detector
    gives them, and ``crop``, the pixels the classifier would see."""

    box: Box
    face_score: float
    landmarks: tuple[tuple[float, float], ...] | None
    crop: Box


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
class FrameResult:
    """What a pipeline answers for one frame."""

    faces: list[Face]
    timings: Timings


class FramePipeline(Protocol):
    """What the frame loop needs of a pipeline (the real one, a tracking one, or a test's stand-in)."""

    margin: float

    def infer(self, image: np.ndarray) -> FrameResult: ...


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

    def infer(self, image: np.ndarray) -> FrameResult:
        """Detect, crop and classify the faces of ``image``: BGR uint8 H×W×3, or grayscale H×W, or BGRA
        H×W×4 (both converted)."""
        image = as_bgr(image)
        t0 = time.perf_counter()
        detected = self.detect(image)
        t1 = time.perf_counter()
        faces = self.classify(image, detected)
        t2 = time.perf_counter()
        return FrameResult(faces, Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - t0) * 1e3))

    def detect(self, image: np.ndarray) -> list[Detected]:
        """The faces of a BGR ``image`` at least ``min_face`` px on each side, with their crop boxes."""
        found = self.detector.detect(image)
        h, w = image.shape[:2]
        boxes = clamp_box(found.boxes, w, h).reshape(-1, 4)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = np.flatnonzero(sides >= self.min_face)
        self.skipped_small += len(boxes) - len(big)
        found, boxes = found.take(big), boxes[big]
        crop_boxes = face_crop_boxes(found.boxes, self.margin, w, h)
        detected = []
        for i in range(len(boxes)):
            landmarks = None
            if found.landmarks is not None:
                landmarks = tuple((float(x), float(y)) for x, y in found.landmarks[i].reshape(-1, 2))
            detected.append(
                Detected(as_box(boxes[i]), float(found.scores[i]), landmarks, as_box(crop_boxes[i]))
            )
        return detected

    def classify(self, image: np.ndarray, detected: Sequence[Detected]) -> list[Face]:
        """Label each detected face of ``image`` (all crops in one call, batched inside), same order."""
        probs = self.classifier.infer([crop(image, np.asarray(d.crop)) for d in detected])
        faces = []
        for d, p in zip(detected, probs, strict=True):
            k = int(np.argmax(p))
            label = short_name(self.classifier.labels[k])
            faces.append(Face(d.box, label, float(p[k]), d.face_score, d.landmarks, d.crop))
        return faces


def as_bgr(image: np.ndarray) -> np.ndarray:
    """``image`` as BGR uint8 H×W×3: grayscale and BGRA are converted, anything else is refused."""
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"expected an image array (H×W×3 BGR uint8), got {type(image).__name__}; "
            "read files with edgemask.core.imageio.read_image"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an H×W×3 BGR image (or H×W gray, H×W×4 BGRA), got shape {image.shape}")


def as_box(row: np.ndarray) -> Box:
    x1, y1, x2, y2 = (int(v) for v in row)
    return x1, y1, x2, y2
