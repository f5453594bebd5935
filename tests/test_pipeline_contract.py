"""The pipeline's contract: what infer accepts, its two halves (detect, classify) against the whole, and
the pure crop rule the sort engines share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgemask.app.sorting.crops import crop_name, crop_rows
from edgemask.core.formats import DEFAULT_VARIANT
from edgemask.core.imageio import read_image
from edgemask.core.ops.boxes import face_crop_boxes
from edgemask.core.pipeline import Face, FrameResult, Pipeline, as_bgr

MODELS = Path(__file__).resolve().parent.parent / "models"


@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_gray_images_become_three_equal_channels(gray: np.ndarray) -> None:
    bgr = as_bgr(gray)
    assert bgr.shape == (*gray.shape, 3) and bgr.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(bgr[..., channel], gray)


def test_bgra_loses_alpha_and_bgr_passes_untouched() -> None:
    bgra = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(as_bgr(bgra), bgra[..., :3])
    bgr = bgra[..., :3].copy()
    assert as_bgr(bgr) is bgr


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        ("scene.jpg", TypeError, "got str; read files with edgemask.core.imageio.read_image"),
        (np.zeros((4, 4, 3), np.float32), ValueError, "expected a uint8 image, got float32"),
        (np.zeros((4, 4, 2), np.uint8), ValueError, r"got shape \(4, 4, 2\)"),
    ],
)
def test_anything_else_is_refused_saying_what_is_expected(image, error, message) -> None:
    with pytest.raises(error, match=message):
        as_bgr(image)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    paths = [DEFAULT_VARIANT.path(MODELS, m) for m in ("yunet", "classifier")]
    return Pipeline.from_paths(*paths)


def test_the_halves_answer_what_the_whole_does(pipeline: Pipeline, scenes_dir: Path) -> None:
    image = read_image(scenes_dir / "images" / "maksssksksss4.jpg")
    result = pipeline.infer(image)
    assert isinstance(result, FrameResult) and result.faces
    assert result.timings.total >= result.timings.detect > 0
    detected = pipeline.detect(image)
    assert [d.box for d in detected] == [f.box for f in result.faces]
    assert pipeline.classify(image, detected) == result.faces
    assert [d.crop for d in detected] == [f.crop for f in result.faces]
    # A gray copy of the frame goes through the real pipeline too.
    gray = image.mean(axis=2).astype(np.uint8)
    assert pipeline.infer(gray).faces


def test_classifying_only_some_faces_labels_those_alone(pipeline: Pipeline, scenes_dir: Path) -> None:
    image = read_image(scenes_dir / "images" / "maksssksksss4.jpg")
    detected = pipeline.detect(image)
    every = pipeline.classify(image, detected)
    assert pipeline.classify(image, detected[1:2]) == every[1:2]
    assert pipeline.classify(image, []) == []


def test_crop_rows_cut_the_classifiers_pixels_and_name_them_by_key() -> None:
    image = np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3)
    with_crop = Face((10, 10, 20, 30), "mask", 0.9, 0.8, crop=(8, 6, 22, 34))
    without = Face((30, 5, 50, 25), "no_mask", 0.7, 0.6)
    result = crop_rows("/in/day1/a.jpg", "day1/a.jpg", "abc", image, [with_crop, without], 0.1)
    assert (result.source, result.key, result.digest) == ("/in/day1/a.jpg", "day1/a.jpg", "abc")
    first, second = result.faces
    np.testing.assert_array_equal(first.pixels, image[6:34, 8:22])
    x1, y1, x2, y2 = face_crop_boxes(without.box, 0.1, 60, 40)[0]
    np.testing.assert_array_equal(second.pixels, image[y1:y2, x1:x2])
    assert [f.name for f in result.faces] == ["day1__a_face0.jpg", "day1__a_face1.jpg"]
    assert [(f.index, f.label, f.box) for f in result.faces] == [
        (0, "mask", with_crop.box),
        (1, "no_mask", without.box),
    ]


@given(st.text(min_size=1, max_size=30), st.integers(0, 50))
def test_crop_names_are_one_path_component(key: str, index: int) -> None:
    name = crop_name(key, index)
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert name.endswith(f"_face{index}.jpg")
