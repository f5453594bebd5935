"""What every face detector family answers, and the options a user may override.

Each family (:mod:`.res10`, :mod:`.yunet`) is one small class in the OpenCV Zoo style: the model path and
thresholds go into the constructor, ``infer(bgr)`` returns a plain ``(K, 5)`` array
``[x1, y1, x2, y2, score]`` in the frame's pixels, and ``detect(bgr)`` returns the same faces as
:class:`Detections`, with landmarks where the family has them. Both run a network on one or more
:class:`Pass` inputs; the export gate and the int8 calibration use those same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgemask.core.backends import Backend
from edgemask.core.ops.boxes import nms

LANDMARKS = 5


@dataclass(frozen=True)
class Detections:
    """``boxes`` ``(K, 4)`` corners and ``scores`` ``(K,)``, best first; ``landmarks`` ``(K, 10)``
    ``[x0, y0, ..., x4, y4]`` (YuNet) or ``None`` (res10). Pixels of whatever image they refer to."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, landmarks: bool = False) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 2 * LANDMARKS), np.float32) if landmarks else None,
        )

    def as_array(self) -> np.ndarray:
        """``(K, 5)`` rows ``[x1, y1, x2, y2, score]``."""
        return np.concatenate([self.boxes, self.scores[:, None]], axis=1).astype(np.float32)

    def take(self, index: np.ndarray) -> Detections:
        lm = None if self.landmarks is None else self.landmarks[index]
        return Detections(self.boxes[index], self.scores[index], lm)

    def scaled(self, sx: float, sy: float) -> Detections:
        """Coordinates multiplied by ``sx`` (x) and ``sy`` (y)."""
        boxes = (self.boxes * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
        lm = None
        if self.landmarks is not None:
            lm = (self.landmarks * np.tile(np.array([sx, sy], np.float32), LANDMARKS)).astype(np.float32)
        return Detections(boxes, self.scores.astype(np.float32), lm)

    @staticmethod
    def merge(parts: Sequence[Detections], iou_threshold: float) -> Detections:
        """Several passes' faces as one set: overlapping boxes (IoU above the threshold) are one face."""
        if len(parts) == 1:
            return parts[0]
        lms = [p.landmarks for p in parts]
        landmarks = None if any(lm is None for lm in lms) else np.concatenate(lms)
        joined = Detections(
            np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]), landmarks
        )
        return joined.take(nms(joined.boxes, joined.scores, iou_threshold, score_threshold=-np.inf))


@dataclass(frozen=True)
class Pass:
    """One network run on a frame: ``blob`` ``(1, H, W, 3)`` uint8 in the model's channel order holds the
    ``frame_hw`` frame resized to ``resized_hw`` at its top-left (the rest is padding, if any)."""

    blob: np.ndarray
    frame_hw: tuple[int, int]
    resized_hw: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """The network input ``(height, width)``."""
        return int(self.blob.shape[1]), int(self.blob.shape[2])


@dataclass(frozen=True)
class DetectorOptions:
    """Overrides of a detector file's operating point; ``None`` keeps what the file says.

    ``size``: YuNet's long side; res10's squashed pass. ``small_face_size``: res10's enlarged pass
    (0 turns it off; YuNet has none). ``conf`` / ``nms``: face score and NMS IoU thresholds.
    """

    size: int | None = None
    small_face_size: int | None = None
    conf: float | None = None
    nms: float | None = None


class Detector(Protocol):
    """The contract the pipeline, the gate and the benchmarks rely on."""

    family: str
    backend: Backend
    conf_threshold: float

    def passes(self, image: np.ndarray) -> list[Pass]: ...

    def run_pass(self, p: Pass) -> Detections: ...

    def detect(self, image: np.ndarray) -> Detections: ...

    def infer(self, image: np.ndarray) -> np.ndarray: ...
