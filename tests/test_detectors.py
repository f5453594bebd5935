"""The detector families through the shipped int8 files: faces on a real scene against its ground truth,
landmarks where a face has them, odd frames, and files of the wrong kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemask.core.backends import BackendError
from edgemask.core.detectors import Detections, Res10Detector, YuNetDetector, load_detector
from edgemask.core.formats import DEFAULT_VARIANT
from edgemask.core.imageio import read_image
from edgemask.core.ops.boxes import iou_matrix
from edgemask.core.pipeline import Pipeline
from edgemask.evaluation.voc import parse_annotation

MODELS = Path(__file__).resolve().parent.parent / "models"
SCENE = "maksssksksss0"
"""A street scene with 3 annotated faces of 30-40 px."""


def shipped(model: str) -> Path:
    path = DEFAULT_VARIANT.path(MODELS, model)
    if not path.is_file():
        pytest.skip(f"{path.name} not exported yet")
    return path


@pytest.fixture(scope="module")
def scene(scenes_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    ann = parse_annotation(scenes_dir / "annotations" / f"{SCENE}.xml")
    return read_image(scenes_dir / "images" / f"{SCENE}.jpg"), np.array([o.box for o in ann.objects])


def test_yunet_finds_the_annotated_faces_with_landmarks_inside(scene) -> None:
    image, truth = scene
    found = YuNetDetector(shipped("yunet"), conf_threshold=0.1).detect(image)
    assert (iou_matrix(truth, found.boxes).max(axis=1) >= 0.5).all()  # the masked one scores 0.18
    assert found.landmarks is not None and found.landmarks.shape == (len(found), 10)
    points = found.landmarks.reshape(-1, 5, 2)
    x1, y1, x2, y2 = (found.boxes[:, None, k] for k in range(4))
    margin = 0.25 * (x2 - x1)  # landmarks may stick out of a tight box a little
    assert ((points[..., 0] >= x1 - margin) & (points[..., 0] <= x2 + margin)).all()
    assert ((points[..., 1] >= y1 - margin) & (points[..., 1] <= y2 + margin)).all()
    # Upright faces: both eyes above the nose tip, which is above both mouth corners.
    eyes_y, nose_y, mouth_y = points[:, :2, 1].max(axis=1), points[:, 2, 1], points[:, 3:, 1].min(axis=1)
    assert (eyes_y < nose_y).all() and (nose_y < mouth_y).all()
    assert np.array_equal(found.as_array(), YuNetDetector(shipped("yunet"), conf_threshold=0.1).infer(image))


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (31, 2000, 3)])
def test_frames_smaller_than_a_stride_give_an_answer(shape: tuple[int, int, int]) -> None:
    for model in ("yunet", "res10"):
        found = load_detector(shipped(model)).detect(np.zeros(shape, np.uint8))
        assert isinstance(found, Detections) and len(found) == 0


def test_a_file_of_another_family_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match=r"face_detector_res10_int8.tflite: not a YuNet face detector"):
        YuNetDetector(shipped("res10"))
    with pytest.raises(ValueError, match=r"face_detector_yunet_int8.tflite: not a res10 SSD face detector"):
        Res10Detector(shipped("yunet"))
    with pytest.raises(BackendError, match="not a face detector"):
        load_detector(shipped("classifier"))


def test_pipeline_reports_yunet_landmarks_in_json(scene) -> None:
    image, _ = scene
    faces = Pipeline.from_paths(shipped("yunet"), shipped("classifier")).infer(image).faces
    assert faces and all(f.landmarks is not None and len(f.landmarks) == 5 for f in faces)
    record = faces[0].to_dict()
    assert len(record["landmarks"]) == 5 and all(len(p) == 2 for p in record["landmarks"])
    res10_faces = Pipeline.from_paths(shipped("res10"), shipped("classifier")).infer(image).faces
    assert all("landmarks" not in f.to_dict() for f in res10_faces)
