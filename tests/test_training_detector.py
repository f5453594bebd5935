"""The detector stage's numpy parts: priors, SimOTA assignment, ignored small faces, augmentation
geometry, the held-out split and the scene loader's skips. No TensorFlow."""

import warnings

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.core.ops.yunet import grid_cells
from edgemask.training.data import DataError
from edgemask.training.detector.assign import (
    CANDIDATE_IOUS,
    candidate_regions,
    image_targets,
    priors_for,
    simota,
    unlabelled_small_faces,
)
from edgemask.training.detector.augment import (
    DetectorAugment,
    crop_boxes,
    crop_square,
    fitted_view,
    flip_boxes,
    flip_landmarks,
    random_view,
)
from edgemask.training.detector.data import is_held_out, load_face_scenes, split_scenes

STRIDES = (8, 16, 32)
GEOMETRY_ONLY = DetectorAugment(brightness=0, contrast=0, colour=0, blur_prob=0, jpeg_prob=0)


def cell_index(priors, stride: int, col: int, row: int) -> int:
    return int(np.flatnonzero((priors.strides == stride) & np.all(priors.cells == [col, row], axis=1))[0])


def test_priors_follow_the_heads_order():
    priors = priors_for(64, 96, STRIDES)
    # 8x12 + 4x6 + 2x3 cells, stride 8 first, row-major as grid_cells.
    assert len(priors) == 96 + 24 + 6
    np.testing.assert_array_equal(priors.cells[:96], grid_cells(64, 96, 8))
    np.testing.assert_array_equal(priors.strides[[0, 95, 96, 119, 120]], [8, 8, 16, 16, 32])
    np.testing.assert_array_equal(priors.centres[1], [12.0, 4.0])  # cell (1, 0) of stride 8


def test_candidate_regions_by_hand():
    priors = priors_for(64, 64, STRIDES)
    face = np.array([[8.0, 8.0, 24.0, 24.0]])  # centre (16, 16)
    in_box, in_centre = candidate_regions(priors, face, 2.5)
    s8 = priors.strides == 8
    # Stride-8 centres 4, 12, 20, 28, ...: inside the box 12 and 20 on each axis; within 20 px of 16: 4..28.
    inside = {tuple(c) for c in priors.cells[in_box[0] & s8].astype(int)}
    assert inside == {(1, 1), (2, 1), (1, 2), (2, 2)}
    assert int((in_centre[0] & s8).sum()) == 16
    # Stride 32: the one centre at (16, 16) is inside the box too.
    s32 = priors.strides == 32
    assert {tuple(c) for c in priors.cells[in_box[0] & s32].astype(int)} == {(0, 0)}


def test_simota_takes_the_cell_whose_prediction_fits():
    priors = priors_for(64, 64, STRIDES)
    face = np.array([[8.0, 8.0, 24.0, 24.0]])
    boxes = np.zeros((len(priors), 4))
    best = cell_index(priors, 8, 1, 1)
    boxes[best] = face[0]
    face_of, iou = simota(priors, boxes, np.full(len(priors), 0.5), face)
    # Sum of the best IoUs is 1, so k = 1: only the exact cell learns the face.
    assert np.flatnonzero(face_of >= 0).tolist() == [best]
    assert iou[best] == pytest.approx(1.0)


def test_a_cell_claimed_twice_goes_to_the_cheaper_face():
    priors = priors_for(64, 64, STRIDES)
    faces = np.array([[8.0, 8.0, 24.0, 24.0], [10.0, 10.0, 26.0, 26.0]])
    boxes = np.zeros((len(priors), 4))
    shared = cell_index(priors, 8, 1, 1)
    boxes[shared] = [10.0, 10.0, 26.0, 26.0]  # the second face exactly
    face_of, _ = simota(priors, boxes, np.full(len(priors), 0.5), faces)
    assert face_of[shared] == 1


def test_no_faces_means_no_positives():
    priors = priors_for(64, 64, STRIDES)
    face_of, iou = simota(priors, np.zeros((len(priors), 4)), np.zeros(len(priors)), np.zeros((0, 4)))
    assert (face_of == -1).all() and (iou == 0).all()


boxes_strategy = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(4, 60), st.floats(4, 60)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(faces=boxes_strategy, seed=st.integers(0, 1000))
def test_simota_positives_are_candidates_and_k_is_bounded(faces, seed):
    priors = priors_for(128, 128, STRIDES)
    faces = np.array([[x, y, x + w, y + h] for x, y, w, h in faces])
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 128, (len(priors), 2))
    sizes = rng.uniform(4, 64, (len(priors), 2))
    preds = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    face_of, _ = simota(priors, preds, rng.uniform(0, 1, len(priors)), faces)
    in_box, in_centre = candidate_regions(priors, faces, 2.5)
    for cell in np.flatnonzero(face_of >= 0):
        assert in_box[face_of[cell], cell] or in_centre[face_of[cell], cell]
    for f in range(len(faces)):
        assert (face_of == f).sum() <= CANDIDATE_IOUS


def test_confident_small_unlabelled_faces_are_ignored():
    faces = np.array([[50.0, 50.0, 90.0, 90.0]])  # 40 px
    preds = np.array(
        [
            [0.0, 0.0, 4.0, 4.0],  # tiny, far from the face, confident: ignored
            [0.0, 0.0, 4.0, 4.0],  # tiny but not confident: a plain negative
            [0.0, 0.0, 30.0, 30.0],  # confident but not much smaller: a plain negative
            [52.0, 52.0, 60.0, 60.0],  # tiny, confident, on the labelled face: not ignored
        ]
    )
    scores = np.array([0.9, 0.3, 0.9, 0.9])
    ignored = unlabelled_small_faces(preds, scores, faces, reference_side=40.0)
    assert ignored.tolist() == [True, False, False, False]


def test_image_targets_weigh_landmarks_where_the_teacher_box_fits():
    priors = priors_for(64, 64, STRIDES)
    face = np.array([[8.0, 8.0, 24.0, 24.0]])
    boxes = np.zeros((len(priors), 4))
    best = cell_index(priors, 8, 1, 1)
    boxes[best] = face[0]
    landmarks = np.random.default_rng(0).normal(size=(len(priors), 10))
    t = image_targets(priors, boxes, np.full(len(priors), 0.4), landmarks, face, 16.0)
    assert t.positive.sum() == 1 and t.positive[best] == 1
    np.testing.assert_array_equal(t.boxes[best], face[0])
    assert t.landmark_weight[best] == 1 and t.landmark_weight.sum() == 1
    np.testing.assert_allclose(t.landmarks, landmarks.astype(np.float32))
    assert (t.obj_weight == 1).all()


def test_crop_moves_pixels_and_boxes_together():
    image = np.zeros((40, 60, 3), np.uint8)
    image[12, 25] = 255
    out = crop_square(image, 20, 10, 30)
    assert out.shape == (30, 30, 3) and out[2, 5, 0] == 255 and out.sum() == 255 * 3
    # A window reaching outside the image is black there.
    assert crop_square(image, -10, -10, 20)[:10].sum() == 0
    boxes = np.array([[22.0, 12.0, 30.0, 20.0], [0.0, 0.0, 10.0, 10.0], [40.0, 25.0, 55.0, 45.0]])
    # The first shifts by (20, 10); the second's centre is outside; the third is clipped at 30.
    np.testing.assert_array_equal(crop_boxes(boxes, 20, 10, 30), [[2, 2, 10, 10], [20, 15, 30, 30]])


def test_flip_twice_is_identity_and_swaps_sides():
    boxes = np.array([[10.0, 5.0, 30.0, 25.0]])
    np.testing.assert_array_equal(flip_boxes(boxes, 100), [[70, 5, 90, 25]])
    np.testing.assert_array_equal(flip_boxes(flip_boxes(boxes, 100), 100), boxes)
    # right eye (10, 1), left eye (20, 2), nose (15, 3), right mouth (11, 4), left mouth (19, 5)
    landmarks = np.array([[10.0, 1, 20, 2, 15, 3, 11, 4, 19, 5]])
    flipped = flip_landmarks(landmarks, 100)
    np.testing.assert_array_equal(flipped, [[80, 2, 90, 1, 85, 3, 81, 5, 89, 4]])
    np.testing.assert_array_equal(flip_landmarks(flipped, 100), landmarks)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_random_views_keep_boxes_on_their_faces(seed):
    """White squares on black: after any crop, scale and flip every box still covers white pixels."""
    image = np.zeros((120, 160, 3), np.uint8)
    boxes = np.array([[20.0, 30.0, 60.0, 70.0], [100.0, 20.0, 140.0, 60.0]])
    for x1, y1, x2, y2 in boxes.astype(int):
        image[y1:y2, x1:x2] = 255
    view = random_view(image, boxes, 96, GEOMETRY_ONLY, np.random.default_rng(seed))
    assert view.image.shape == (96, 96, 3)
    for x1, y1, x2, y2 in view.boxes:
        inner = view.image[int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1]
        if inner.size:
            assert inner.mean() > 200


def test_fitted_view_scales_to_the_long_side():
    image = np.zeros((100, 200, 3), np.uint8)
    view = fitted_view(image, np.array([[20.0, 10.0, 60.0, 50.0]]), 64)
    assert view.scale == pytest.approx(0.32)
    np.testing.assert_allclose(view.boxes, [[6.4, 3.2, 19.2, 16.0]])


def test_held_out_split_is_a_stable_tenth():
    names = [f"scene{i}.jpg" for i in range(2000)]
    held = [n for n in names if is_held_out(n, 0.1)]
    assert 0.08 < len(held) / len(names) < 0.12
    assert held == [n for n in names if is_held_out(n, 0.1)]
    assert is_held_out("scene0.jpg", 0.1) == is_held_out("scene0.jpg", 0.1)


XML = """<annotation><filename>{name}</filename><size><width>64</width><height>48</height></size>
<object><name>{cls}</name><bndbox><xmin>{x1}</xmin><ymin>10</ymin><xmax>{x2}</xmax><ymax>30</ymax></bndbox>
</object></annotation>"""


def test_bad_scenes_are_skipped_warned_and_counted(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for name, cls, x1, x2 in [
        ("a", "with_mask", 10, 30),
        ("b", "hat", 10, 30),
        ("c", "without_mask", 70, 90),
    ]:
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), np.zeros((48, 64, 3), np.uint8))
        (tmp_path / "annotations" / f"{name}.xml").write_text(
            XML.format(name=f"{name}.png", cls=cls, x1=x1, x2=x2)
        )
    (tmp_path / "images" / "d.png").write_bytes(b"not an image")
    (tmp_path / "annotations" / "d.xml").write_text(XML.format(name="d.png", cls="with_mask", x1=1, x2=9))
    (tmp_path / "annotations" / "e.xml").write_text("<annotation><size>")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenes, skipped = load_face_scenes(tmp_path)
    assert [s.name for s in scenes] == ["a.png"]
    assert len(caught) == 4
    assert skipped == {
        "unknown class": 1,
        "box without area in the image": 1,
        "unreadable image": 1,
        "unreadable annotation": 1,
    }
    train, held = split_scenes(scenes, 0.5)
    assert len(train) == 1 and len(held) == 1  # a single scene serves both sides


def test_no_usable_scene_is_a_data_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    with pytest.raises(DataError, match="no usable VOC scenes"):
        load_face_scenes(tmp_path)
