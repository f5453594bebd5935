"""Scene crops for training: detector boxes matched to the annotations and cut by the runtime's rule,
bad scenes skipped and counted, detector boxes cached by the detector's digest."""

import json
import shutil
import warnings

import cv2
import numpy as np
import pytest
from conftest import MODELS
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.core.detectors import Detections
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.core.ops.image import classifier_input
from edgemask.evaluation.voc import Scene
from edgemask.labels import IGNORE, LABELS
from edgemask.training.classifier.scenes import (
    DetectionCache,
    SceneCrops,
    SceneDetections,
    background_patches,
    crops_of_scene,
    detections_cache,
    load_scene_crops,
    split_by_scene,
    training_label,
)
from edgemask.training.data import DataError

MASKED, BARE = LABELS.index("with_mask"), LABELS.index("without_mask")


def _scene(classes, boxes, labels, shape=(60, 80)) -> Scene:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return Scene("s.png", None, image, np.asarray(boxes, np.float64), tuple(classes), np.asarray(labels))


def _found(boxes, scores=None) -> SceneDetections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores if scores is not None else np.linspace(0.9, 0.6, len(boxes)), np.float32)
    return SceneDetections(boxes, scores, np.zeros((len(boxes), 10), np.float32))


def test_training_label_follows_the_incorrect_mask_policy():
    assert training_label("with_mask", "skip") == MASKED
    assert training_label("without_mask", "with_mask") == BARE
    assert training_label("mask_weared_incorrect", "skip") is None
    assert training_label("mask_weared_incorrect", "with_mask") == MASKED
    assert training_label("mask_weared_incorrect", "without_mask") == BARE


def test_scene_crops_are_matched_detector_boxes_cut_by_the_runtime_rule_plus_annotated_boxes():
    scene = _scene(
        ["with_mask", "without_mask", "mask_weared_incorrect", "without_mask"],
        [[10, 10, 30, 30], [40, 10, 60, 34], [5, 40, 20, 55], [62, 40, 78, 58]],
        [MASKED, BARE, IGNORE, IGNORE],  # the last one is VOC "difficult"
    )
    # detections: a jittered copy of face 1, one of face 0, one on nothing, one on the incorrect face
    found = _found([[42, 12, 61, 35], [11, 9, 31, 29], [0, 0, 6, 6], [5, 41, 20, 56]])
    got = crops_of_scene(scene, found, 16, 0.1, "skip")
    kinds = [k for *_, k in got]
    assert kinds == ["detector", "detector", "truth", "truth"]
    labels = [y for _, y, _, _ in got]
    assert labels == [BARE, MASKED, MASKED, BARE]  # labelled from the face each detection matched
    h, w = scene.image.shape[:2]
    expect = face_crop_boxes(found.boxes[:1], 0.1, w, h)[0]
    np.testing.assert_array_equal(got[0][0], classifier_input(crop(scene.image, expect), 16))
    np.testing.assert_array_equal(got[2][0], classifier_input(scene.image[10:30, 10:30], 16))
    assert got[0][2] == pytest.approx(19.0)  # the detected width
    with_incorrect = crops_of_scene(scene, found, 16, 0.1, "with_mask")
    assert [y for _, y, _, _ in with_incorrect] == [BARE, MASKED, MASKED, MASKED, BARE, MASKED]


def test_cache_is_named_by_the_detector_digest_and_read_back(tmp_path, caplog):
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    a.write_bytes(b"one detector")
    b.write_bytes(b"another detector")
    assert detections_cache(tmp_path, "x/scenes_train", a) != detections_cache(tmp_path, "x/scenes_train", b)
    path = detections_cache(tmp_path, "x/scenes_train", a)
    assert path.name.startswith("detections_scenes_train_")

    class FakeDetector:
        calls = 0

        def detect(self, image):
            FakeDetector.calls += 1
            return Detections(np.array([[1, 2, 11, 12]], np.float32), np.array([0.8], np.float32), None)

    scene = _scene(["with_mask"], [[1, 2, 11, 12]], [MASKED])
    cache = DetectionCache(path, a)
    cache.detector = FakeDetector()
    first = cache.get(scene)
    cache.save()
    again = DetectionCache(path, a)  # a new cache reads the file and never runs a detector
    np.testing.assert_allclose(again.get(scene).boxes, first.boxes)
    assert FakeDetector.calls == 1 and again.detector is None
    path.write_text("{not json")
    broken = DetectionCache(path, a)  # an unreadable cache is dropped with a warning: detect again
    assert broken.found == {} and "unreadable detection cache" in caplog.text


XML = """<annotation><filename>{name}</filename><size><width>80</width><height>60</height></size>
<object><name>without_mask</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object>
<object><name>with_mask</name><bndbox><xmin>40</xmin><ymin>10</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
<object><name>hat</name><bndbox><xmin>40</xmin><ymin>10</ymin><xmax>60</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


def _voc(folder, names):
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / "images" / name), np.full((60, 80, 3), 40 * i, np.uint8))
        (folder / "annotations" / name.replace(".png", ".xml")).write_text(XML.format(name=name))


def test_bad_scenes_are_skipped_and_counted_never_fatal(tmp_path, caplog):
    folder = tmp_path / "scenes"
    _voc(folder, ["a.png", "b.png"])
    (folder / "images" / "b.png").write_bytes(b"")  # undecodable
    (folder / "annotations" / "c.xml").write_text(XML.format(name="gone.png"))  # image missing
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        crops, bank = load_scene_crops(folder, 8, None, tmp_path / "run", 0.1, patches_per_scene=3)
    assert crops.labels.tolist() == [BARE] and crops.kinds.tolist() == ["truth"]
    assert bank.shape[1:] == (32, 32, 3) and len(bank) <= 3
    for reason in ("box without area in the image", "unknown class", "unreadable image", "image not found"):
        assert f"skipped while loading scenes: 1 × {reason}" in caplog.text
    (folder / "annotations" / "a.xml").unlink()
    with warnings.catch_warnings(record=True), pytest.raises(DataError, match="no usable"):
        load_scene_crops(folder, 8, None, tmp_path / "run", 0.1)


def test_real_detector_crops_on_real_scenes_are_cached(tmp_path, scenes_dir):
    detector = MODELS / "face_detector_yunet_int8.tflite"
    folder = tmp_path / "scenes"
    for sub in ("images", "annotations"):
        (folder / sub).mkdir(parents=True)
    xmls = sorted((scenes_dir / "annotations").glob("*.xml"))[:3]
    for xml in xmls:
        shutil.copy(xml, folder / "annotations")
        (image,) = (scenes_dir / "images").glob(xml.stem + ".*")
        shutil.copy(image, folder / "images")
    crops, _ = load_scene_crops(folder, 32, detector, tmp_path / "run", 0.1)
    assert (crops.kinds == "detector").sum() >= 1  # YuNet finds some annotated faces
    assert (crops.kinds == "truth").sum() >= (crops.kinds == "detector").sum()
    cached = json.loads(detections_cache(tmp_path / "run", folder, detector).read_text())
    assert sorted(cached) == sorted(p.name for p in (folder / "images").iterdir())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=40), st.floats(0.05, 0.9), st.integers(0, 99))
def test_split_by_scene_keeps_each_scene_on_one_side(scene_ids, fraction, seed):
    n = len(scene_ids)
    crops = SceneCrops(
        np.zeros((n, 2, 2, 3), np.uint8),
        np.arange(n) % 2,
        np.ones(n, np.float32),
        np.array(["truth"] * n),
        np.array([f"s{i}" for i in scene_ids]),
    )
    train, val = split_by_scene(crops, fraction, seed)
    assert not set(train.scenes) & set(val.scenes)
    assert len(train.labels) + len(val.labels) == n and len(val.labels) > 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 70), st.integers(0, 50), st.integers(4, 30)), min_size=0, max_size=4),
    st.integers(0, 999),
)
def test_background_patches_never_touch_a_face(faces, seed):
    """Paint the faces white on black: no patch may hold a white pixel."""
    image = np.zeros((60, 80, 3), np.uint8)
    boxes = []
    for x, y, s in faces:
        boxes.append([x, y, min(80, x + s), min(60, y + s)])
        image[y : y + s, x : x + s] = 255
    scene = Scene("s.png", None, image, np.asarray(boxes, np.float64).reshape(-1, 4), (), np.zeros(0))
    for patch in background_patches(scene, 5, np.random.default_rng(seed)):
        assert patch.shape == (32, 32, 3) and patch.max() == 0
