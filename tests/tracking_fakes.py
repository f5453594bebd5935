"""A detector and a classifier that answer from a script, so tracked runs have known people."""

from __future__ import annotations

import numpy as np

from edgemask.core.detectors.base import Detections
from edgemask.core.pipeline import Pipeline
from edgemask.labels import LABELS


class ScriptedDetector:
    """Answers the boxes and scores it is given for each frame, in order; filters by its threshold."""

    family = "scripted"
    conf_threshold = 0.5

    def __init__(self, frames: list[list[tuple[tuple[float, float, float, float], float]]]) -> None:
        self.frames = iter(frames)

    def detect(self, image: np.ndarray) -> Detections:
        found = [(box, score) for box, score in next(self.frames) if score >= self.conf_threshold]
        boxes = np.array([b for b, _ in found], np.float32).reshape(-1, 4)
        return Detections(boxes, np.array([s for _, s in found], np.float32))


class ScriptedClassifier:
    """Probability of a mask taken in turn from ``p_mask``; counts the crops it saw."""

    labels = LABELS

    def __init__(self, p_mask: list[float]) -> None:
        self.p_mask = p_mask
        self.crops = 0

    def infer(self, crops: list[np.ndarray]) -> np.ndarray:
        rows = []
        for _ in crops:
            p = self.p_mask[self.crops % len(self.p_mask)]
            self.crops += 1
            rows.append([p, 1 - p])
        return np.array(rows, np.float32).reshape(-1, 2)


def walking_down(frames: int, score: float = 0.9) -> list[list]:
    """One 40 px face walking down 4 px a frame from y = 20."""
    return [[((100, 20 + 4 * f, 140, 60 + 4 * f), score)] for f in range(frames)]


def scripted_pipeline(frames: list[list], p_mask: list[float]) -> tuple[Pipeline, ScriptedClassifier]:
    classifier = ScriptedClassifier(p_mask)
    return Pipeline(ScriptedDetector(frames), classifier), classifier  # type: ignore[arg-type]
