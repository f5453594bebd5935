"""The tracking benchmark's parts: the virtual camera's geometry and ground truth, the scores (against
hand-computed MOTA, IDF1 and label figures), and a smoke run of benchmarks/tracking.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, REPO

from edgemask.evaluation.sequences import (
    FRAME_SIZE,
    Camera,
    bar_at,
    map_boxes,
    sequence,
    visible_share,
    window_map,
)
from edgemask.evaluation.voc import Scene

pytest.importorskip(
    "motmetrics", reason="the tracking benchmark scores with py-motmetrics: pip install '.[bench]'"
)

from edgemask.evaluation.tracking_metrics import FrameTruth, accumulate, label_scores, mot_summary


def test_a_window_maps_scene_boxes_to_frame_pixels():
    affine = window_map(np.array([100.0, 50.0, 420.0, 290.0]))  # 320 x 240: twice as large on screen
    assert map_boxes(np.array([[110.0, 60.0, 120.0, 70.0]]), affine).tolist() == [[20.0, 20.0, 40.0, 40.0]]


def test_visible_share_counts_the_frame_edge_and_the_bar():
    boxes = np.array([[0, 0, 100, 100], [-50, 0, 50, 100], [200, 200, 300, 300]], float)
    assert visible_share(boxes, (50.0, 150.0)).tolist() == [0.5, 0.5, 1.0]


def test_the_bar_crosses_the_whole_frame_once():
    camera = Camera(bar_width=0.1)
    assert bar_at(0.0, camera) == (-64.0, 0.0)
    assert bar_at(1.0, camera) == (FRAME_SIZE[0], FRAME_SIZE[0] + 64.0)


def test_segments_number_their_persons_apart_and_truth_lies_in_the_frame():
    image = np.full((300, 400, 3), 100, np.uint8)
    scene = Scene(
        "s", Path("s.jpg"), image, np.array([[150.0, 120.0, 190.0, 170.0]]), ("with_mask",), np.zeros(1)
    )
    frames = list(sequence([scene, scene], Camera(frames=5, shake=0.0, bar_width=0.0), seed=0))
    assert len(frames) == 10 and all(f.image.shape == (480, 640, 3) for f in frames)
    assert [f.person_ids.tolist() for f in frames] == [[0]] * 5 + [[1]] * 5
    boxes = np.concatenate([f.boxes for f in frames])
    assert (boxes >= 0).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 480).all()


def hand_case() -> list[FrameTruth]:
    """Two persons over 4 frames; person 20's track changes id at frame 2, person 10's label flips at 3."""
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float)
    frames = []
    for k in range(4):
        ids = np.array([1, 2]) if k < 2 else np.array([1, 3])
        labels = ("mask", "no_mask") if k != 3 else ("no_mask", "no_mask")
        frames.append(
            FrameTruth(np.array([10, 20]), boxes, ("with_mask", "without_mask"), ids, boxes + 1, labels)
        )
    return frames


def test_mot_scores_match_hand_computed_values():
    frames = hand_case()
    summary = mot_summary(accumulate(frames))
    assert summary["id_switches"] == 1 and summary["people"] == 2
    assert summary["mota"] == pytest.approx(1 - 1 / 8)  # one switch over eight ground-truth boxes
    assert summary["idf1"] == pytest.approx(2 * 6 / 16)  # person 20's best id covers 2 of its 4 frames


def test_label_scores_count_right_frames_and_flips_per_person():
    frames = hand_case()
    scores = label_scores(accumulate(frames), frames)
    assert (scores.frames, scores.right, scores.people, scores.flipped_people, scores.flips) == (
        8,
        7,
        2,
        1,
        1,
    )


def test_incorrectly_worn_masks_are_left_out_of_the_label_scores():
    frames = [
        FrameTruth(
            np.array([1]),
            np.array([[0, 0, 9, 9.0]]),
            ("mask_weared_incorrect",),
            np.array([5]),
            np.array([[0, 0, 9, 9.0]]),
            ("mask",),
        )
    ]
    assert label_scores(accumulate(frames), frames).people == 0


@pytest.mark.slow
def test_tracking_quick(tmp_path: Path, scenes_dir: Path):
    out = tmp_path / "tracking.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "tracking.py"),
            "--quick",
            "--models",
            str(MODELS),
            "--scenes",
            str(scenes_dir),
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("- PASS", "- FAIL"))]
    assert len(verdicts) == 6
    results = json.loads(out.read_text())["results"]
    assert results["tracked"]["frames"] == results["--no-track"]["frames"] == 2 * 2 * 12
    assert (
        results["tracked"]["classifier_calls_per_frame"] < results["--no-track"]["classifier_calls_per_frame"]
    )
    assert 0 <= results["tracked"]["idf1"] <= 1
