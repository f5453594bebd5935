"""What every benchmarked system answers for one frame, so the metrics and timers treat them alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemask.core import pipeline
from edgemask.labels import LABELS, label_index


@dataclass(frozen=True)
class FrameResult:
    """``boxes`` ``(K, 4)`` pixels; ``labels`` index ``LABELS``; ``face_scores`` from the detector;
    ``scores`` rank detections for AP: face score × probability of the chosen class."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    face_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, boxes, labels, class_probs, face_scores) -> FrameResult:
        face_scores = np.asarray(face_scores, dtype=np.float64).ravel()
        return cls(
            boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64).ravel(),
            scores=face_scores * np.asarray(class_probs, dtype=np.float64).ravel(),
            face_scores=face_scores,
        )

    @classmethod
    def from_probs(cls, boxes, probs: np.ndarray, face_scores) -> FrameResult:
        """From ``(K, 2)`` class probabilities in ``LABELS`` order: the most likely class wins."""
        probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(LABELS))
        labels = np.argmax(probs, axis=1)
        return cls.build(boxes, labels, probs[np.arange(len(labels)), labels], face_scores)

    @classmethod
    def of(cls, answer: FrameResult | pipeline.FrameResult) -> FrameResult:
        """A peer's answer as is; the edgemask pipeline's faces converted."""
        if isinstance(answer, FrameResult):
            return answer
        faces = answer.faces
        return cls.build(
            [f.box for f in faces],
            [label_index(f.label) for f in faces],
            [f.score for f in faces],
            [f.face_score for f in faces],
        )
