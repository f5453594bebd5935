"""The tracked pipeline on a real Pipeline with a scripted detector and classifier: steady labels, fewer
classifier calls, people and crossings counted, tracks ended by a frame of another size."""

import numpy as np
import pytest

from edgemask.core.detectors.base import Detections
from edgemask.core.pipeline import Pipeline
from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.counting import CountLine
from edgemask.core.tracking.tracker import TrackerOptions
from edgemask.core.tracking.votes import VoteRule
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


def tracked(frames, p_mask, **kwargs) -> tuple[TrackedPipeline, ScriptedClassifier]:
    classifier = ScriptedClassifier(p_mask)
    pipeline = Pipeline(ScriptedDetector(frames), classifier)  # type: ignore[arg-type]
    return TrackedPipeline(pipeline, **kwargs), classifier


def test_a_noisy_person_keeps_one_id_and_one_label_with_few_classifier_calls():
    pipe, classifier = tracked(walking_down(60), [0.9, 0.45, 0.8, 0.4], votes=VoteRule(recheck_frames=15))
    image = np.zeros((480, 640, 3), np.uint8)
    results = [pipe.infer(image) for _ in range(60)]
    frame_labels = {f.label for r in results for f in r.faces}
    assert frame_labels == {"mask", "no_mask"}  # the classifier alone flips
    tracked_faces = [f for r in results for f in r.faces if f.track is not None]
    assert {f.track for f in tracked_faces} == {1}
    assert {f.track_label for f in tracked_faces} == {"mask"}
    assert len(tracked_faces) == 58  # confirmed on its third frame
    assert classifier.crops == pipe.classified < 20
    assert pipe.people() == {"mask": 1}


def test_a_frame_of_another_size_ends_the_tracks_and_a_new_person_starts():
    pipe, _ = tracked(walking_down(10), [0.1], tracker=TrackerOptions(confirm_hits=1))
    for _ in range(5):
        assert [f.track for f in pipe.infer(np.zeros((480, 640, 3), np.uint8)).faces] == [1]
    assert pipe.people() == {"no_mask": 1}
    for _ in range(5):
        assert [f.track for f in pipe.infer(np.zeros((240, 640), np.uint8)).faces] == [2]
    assert pipe.people() == {"no_mask": 2}


def test_crossing_the_line_is_counted_once_in_by_label():
    line = CountLine.parse("0,100,640,100")
    pipe, _ = tracked(walking_down(40), [0.95], count_line=line)
    for _ in range(40):
        pipe.infer(np.zeros((480, 640, 3), np.uint8))
    assert pipe.crossings() == {("mask", "in"): 1}


def test_low_scores_keep_a_person_but_are_not_reported_alone():
    frames = [*walking_down(5), [((100, 40, 140, 80), 0.4), ((400, 300, 440, 340), 0.4)]]
    pipe, _ = tracked(frames, [0.9], tracker=TrackerOptions(confirm_hits=1))
    image = np.zeros((480, 640, 3), np.uint8)
    for _ in range(5):
        pipe.infer(image)
    faint = pipe.infer(image).faces
    assert [(f.box, f.track) for f in faint] == [((100, 40, 140, 80), 1)]


def test_tracking_lowers_the_detector_threshold_to_its_rescue_band():
    pipe, _ = tracked(walking_down(1), [0.9])
    assert pipe.tracker.options.high_score == 0.5
    assert pipe.pipeline.detector.conf_threshold == pytest.approx(0.3)
