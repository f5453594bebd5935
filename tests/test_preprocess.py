"""Pure image helpers: property tests on random shapes and hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgemask.core.ops.boxes import clamp_box, crop, expand_box
from edgemask.core.ops.image import classifier_input, resize, to_bgr8

shapes = st.tuples(st.integers(1, 64), st.integers(1, 64))


@given(hw=shapes, channels=st.sampled_from([None, 1, 3, 4]), dtype=st.sampled_from([np.uint8, np.uint16]))
@settings(max_examples=60, deadline=None)
def test_to_bgr8_always_gives_three_uint8_channels(hw, channels, dtype) -> None:
    shape = hw if channels is None else (*hw, channels)
    image = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    out = to_bgr8(image)
    assert out.shape == (*hw, 3) and out.dtype == np.uint8


def test_to_bgr8_values() -> None:
    assert to_bgr8(np.full((2, 2), 7, np.uint8))[0, 0].tolist() == [7, 7, 7]
    assert to_bgr8(np.full((1, 1), 0xABCD, np.uint16))[0, 0].tolist() == [0xAB] * 3
    assert to_bgr8(np.full((1, 1, 3), 0.5, np.float32))[0, 0].tolist() == [128] * 3
    with pytest.raises(ValueError):
        to_bgr8(np.zeros((2, 2, 5), np.uint8))


@given(hw=shapes, size=st.integers(8, 96))
@settings(max_examples=40, deadline=None)
def test_classifier_input_shape_and_channel_swap(hw, size) -> None:
    face = np.zeros((*hw, 3), np.uint8)
    face[..., 0] = 255  # pure blue in BGR
    out = classifier_input(face, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert out[..., 2].min() == 255 and out[..., :2].max() == 0  # blue is the last channel in RGB


def test_resize_keeps_constant_images_constant() -> None:
    img = np.full((50, 30, 3), 90, np.uint8)
    assert np.all(resize(img, (7, 11)) == 90) and np.all(resize(img, (200, 100)) == 90)


def test_expand_box_hand_computed() -> None:
    np.testing.assert_allclose(expand_box(np.array([10, 20, 30, 60]), 0.1), [8, 16, 32, 64])


boxes = arrays(np.float64, (8, 4), elements=st.floats(-500, 500, allow_nan=False))


@given(b=boxes, w=st.integers(1, 400), h=st.integers(1, 400))
@settings(max_examples=80, deadline=None)
def test_clamp_box_gives_non_empty_crops_inside_the_image(b, w, h) -> None:
    c = clamp_box(b, w, h)
    assert np.all(c[:, 0] >= 0) and np.all(c[:, 1] >= 0)
    assert np.all(c[:, 2] <= w) and np.all(c[:, 3] <= h)
    assert np.all(c[:, 2] > c[:, 0]) and np.all(c[:, 3] > c[:, 1])
    image = np.zeros((h, w, 3), np.uint8)
    for box in c:
        assert crop(image, box).size > 0


def test_clamp_box_hand_computed() -> None:
    assert clamp_box(np.array([-5.5, 2.2, 30.1, 99.0]), 20, 50).tolist() == [0, 2, 20, 50]


@given(h=st.integers(1, 40), w=st.integers(1, 40), k=st.sampled_from([2, 4]))
@settings(max_examples=40, deadline=None)
def test_shrinking_by_two_or_four_averages_the_blocks_like_area(h: int, w: int, k: int) -> None:
    """Halvings average 2x2 blocks with rounding, so an exact 4x shrink is the 4x4 block mean within a
    level, without the aliasing a single bilinear step would have."""
    image = np.random.default_rng(h * 100 + w).integers(0, 256, (h * k, w * k, 3), dtype=np.uint8)
    out = resize(image, (h, w))
    blocks = image.reshape(h, k, w, k, 3).astype(np.float64).mean(axis=(1, 3))
    assert out.shape == (h, w, 3)
    assert np.abs(out - blocks).max() <= (0.5 if k == 2 else 1.0)


def test_resize_keeps_a_constant_image_constant_and_is_a_no_op_at_size() -> None:
    flat = np.full((37, 53, 3), 91, np.uint8)
    for size in ((10, 13), (80, 120), (37, 53), (1, 1)):
        assert (resize(flat, size) == 91).all()
    assert resize(flat, (37, 53)) is flat
