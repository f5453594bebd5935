"""The tracked pipeline on a real Pipeline with a scripted detector and classifier: steady labels, fewer
classifier calls, people and crossings counted, tracks ended by a frame of another size."""

import numpy as np
import pytest
from tracking_fakes import ScriptedClassifier, scripted_pipeline, walking_down

from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.counting import CountLine
from edgemask.core.tracking.tracker import TrackerOptions
from edgemask.core.tracking.votes import VoteRule


def tracked(frames, p_mask, **kwargs) -> tuple[TrackedPipeline, ScriptedClassifier]:
    pipeline, classifier = scripted_pipeline(frames, p_mask)
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
    assert pipe.tracker.options.high_score == pytest.approx(0.6)  # faces lead tracks a little above it
    assert pipe.pipeline.detector.conf_threshold == pytest.approx(0.3)
