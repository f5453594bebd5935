"""The benchmark peers: AIZOO anchors and decoding by hand, the pipeline's answer converted for the
metrics, and both peers on a real scene (the classic recipe needs tf_keras)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgemask import assets
from edgemask.core.ops.boxes import iou_matrix
from edgemask.core.pipeline import Face, Timings
from edgemask.core.pipeline import FrameResult as PipelineResult
from edgemask.evaluation import frame_result, peers, systems
from edgemask.evaluation.voc import load_scenes


def test_aizoo_anchor_count_is_four_per_cell():
    # 2 sizes at ratio 1 + the first size at the 2 other ratios = 4 anchors a cell.
    cells = sum(n * n for n in peers.AIZOO_FEATURE_MAPS)
    assert cells == 1493
    assert peers.aizoo_anchors().shape == (cells * 4, 4) == (5972, 4)


def test_aizoo_anchors_by_hand():
    anchors = peers.aizoo_anchors()
    c = 0.5 / 33  # centre of the first cell of the 33×33 map
    np.testing.assert_allclose(anchors[0], [c - 0.02, c - 0.02, c + 0.02, c + 0.02], atol=1e-6)
    np.testing.assert_allclose(anchors[1], [c - 0.028, c - 0.028, c + 0.028, c + 0.028], atol=1e-6)
    w, h = 0.04 * np.sqrt(0.62), 0.04 / np.sqrt(0.62)  # the first size at ratio 0.62
    np.testing.assert_allclose(anchors[2], [c - w / 2, c - h / 2, c + w / 2, c + h / 2], atol=1e-6)
    # The next cell is one step to the right (cells go row by row).
    np.testing.assert_allclose(anchors[4], anchors[0] + [1 / 33, 0, 1 / 33, 0], atol=1e-6)
    # The last anchor: the 3×3 map's bottom-right cell, size 0.64 at ratio 0.42.
    w, h = 0.64 * np.sqrt(0.42), 0.64 / np.sqrt(0.42)
    c = 2.5 / 3
    np.testing.assert_allclose(anchors[-1], [c - w / 2, c - h / 2, c + w / 2, c + h / 2], atol=1e-6)


def test_aizoo_decoding_and_nms_by_hand():
    anchors = np.array(
        [[0.4, 0.4, 0.6, 0.6], [0.4, 0.4, 0.6, 0.6], [0.0, 0.0, 0.2, 0.2], [0.7, 0.7, 0.9, 0.9]],
        dtype=np.float32,
    )
    loc = np.zeros((4, 4), dtype=np.float32)
    # Anchor 0: centre moved by (+0.1·1·0.2, -0.1·1·0.2), height doubled: exp(0.2 · ln2/0.2) = 2.
    loc[0] = [1.0, -1.0, 0.0, np.log(2) / 0.2]
    scores = np.array(
        [
            [0.9, 0.1],  # kept, mask
            [0.2, 0.8],  # overlaps box 0 at IoU 0.43 > 0.4: suppressed though its class differs
            [0.45, 0.3],  # below confidence 0.5
            [0.3, 0.7],  # kept, no mask
        ],
        dtype=np.float32,
    )
    boxes, classes, best = peers.aizoo_detections(loc, scores, anchors)
    np.testing.assert_allclose(boxes, [[0.42, 0.28, 0.62, 0.68], [0.7, 0.7, 0.9, 0.9]], atol=1e-6)
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(best, [0.9, 0.7])


def test_pipeline_faces_convert_with_face_times_class_score():
    faces = [Face((1, 2, 11, 12), "mask", 0.8, 0.9), Face((20, 20, 30, 30), "no_mask", 0.6, 0.5)]
    r = frame_result.FrameResult.of(PipelineResult(faces, Timings()))
    np.testing.assert_array_equal(r.boxes, [[1, 2, 11, 12], [20, 20, 30, 30]])
    assert r.labels.tolist() == [0, 1]
    np.testing.assert_allclose(r.scores, [0.72, 0.3])
    np.testing.assert_allclose(r.face_scores, [0.9, 0.5])
    assert frame_result.FrameResult.of(r) is r


def test_probabilities_pick_the_likelier_class():
    r = frame_result.FrameResult.from_probs([[0, 0, 5, 5], [5, 5, 9, 9]], [[0.3, 0.7], [0.9, 0.1]], [0.6, 1])
    assert r.labels.tolist() == [1, 0]
    np.testing.assert_allclose(r.scores, [0.42, 0.9])


@pytest.fixture(scope="module")
def big_face_scene():
    """The first scenes_dev image whose every annotated face is at least 40 px wide."""
    try:
        for scene in load_scenes(assets.dataset("scenes_dev"), min_faces=1):
            widths = scene.boxes[:, 2] - scene.boxes[:, 0]
            if widths.min() >= 40:
                return scene
    except assets.AssetError as e:
        pytest.skip(str(e))
    pytest.skip("no scene with only large faces")


def found_faces(result, scene) -> int:
    """Ground-truth faces overlapped at IoU >= 0.5 by some detection."""
    if len(result) == 0:
        return 0
    return int((iou_matrix(scene.boxes, result.boxes).max(axis=1) >= 0.5).sum())


def test_aizoo_finds_large_faces_on_a_real_scene(big_face_scene):
    detector = peers.AizooDetector(assets.find(systems.AIZOO))
    result = detector.infer(big_face_scene.image)
    h, w = big_face_scene.image.shape[:2]
    assert found_faces(result, big_face_scene) >= 1
    assert (result.boxes >= 0).all() and (result.boxes[:, [2, 3]] <= [w, h]).all()
    assert (result.face_scores > peers.AIZOO_CONFIDENCE).all()


@pytest.mark.tf
def test_classic_recipe_on_a_real_scene(big_face_scene):
    pytest.importorskip("tf_keras")
    recipe = peers.ClassicRecipe(
        assets.fetch(assets.DETECTOR_PROTOTXT),
        assets.fetch(assets.DETECTOR_CAFFEMODEL),
        assets.find(systems.PYIMAGESEARCH),
        call="batch",
    )
    result = recipe.infer(big_face_scene.image)
    assert found_faces(result, big_face_scene) >= 1
    assert (result.face_scores > peers.CLASSIC_CONFIDENCE).all()
    x1, y1, x2, y2 = big_face_scene.boxes[0].astype(int)
    face = big_face_scene.image[y1:y2, x1:x2]
    x = peers.pyimagesearch_input(face)
    assert x.shape == (224, 224, 3) and x.min() >= -1.0 and x.max() <= 1.0
    # The seed's predict per face and one batched call give the same probabilities, which sum to 1.
    batched = recipe.classify([face, face[::2, ::2]])
    recipe.call = "predict"
    np.testing.assert_allclose(recipe.classify([face, face[::2, ::2]]), batched, atol=1e-5)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_round_robin_rotates_who_goes_first():
    from edgemask.evaluation import timing

    calls: list[str] = []
    tasks = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = timing.round_robin(tasks, runs=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert {name: len(ms) for name, ms in samples.items()} == {"a": 3, "b": 3, "c": 3}
    timed = timing.round_robin({"sleep": lambda: time.sleep(0.02), "noop": lambda: None}, runs=2, warmup=0)
    assert min(timed["sleep"]) >= 20.0 > max(timed["noop"])
    stats = timing.stats_ms([3.0, 1.0, 2.0, 10.0])
    assert (stats["median"], stats["min"], stats["mean"], stats["n"]) == (2.5, 1.0, 4.0, 4)
