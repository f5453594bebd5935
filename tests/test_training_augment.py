"""Augmentation keeps shapes and the 0-255 range, and the low-resolution pass really removes detail."""

import numpy as np
import pytest

from edgemask.training.augment import AugmentConfig

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


def _checkerboard(n: int, size: int) -> np.ndarray:
    board = ((np.indices((size, size)).sum(axis=0) % 2) * 255).astype(np.float32)
    return np.repeat(np.repeat(board[None, :, :, None], n, axis=0), 3, axis=3)


def test_full_augmenter_keeps_shape_dtype_and_range():
    from edgemask.training.augment import make_augmenter

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    out = make_augmenter(AugmentConfig(occlusion_prob=0.5), seed=1)(tf.constant(batch)).numpy()
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, batch)  # something changed


def test_low_resolution_always_on_blurs_a_checkerboard_to_gray():
    from edgemask.training.augment import low_resolution

    cfg = AugmentConfig(low_res_prob=1.0, low_res_min=8, low_res_max=8, low_res_aspect=0.0)
    out = low_resolution(tf.constant(_checkerboard(3, 64)), cfg, seed=5).numpy()
    assert out.shape == (3, 64, 64, 3)
    # Area-averaging a 1-px checkerboard down to 8 px leaves mid-gray; the original alternates 0/255.
    assert np.allclose(out, 127.5, atol=1.0)


def test_low_resolution_off_is_identity():
    from edgemask.training.augment import low_resolution

    board = _checkerboard(2, 32)
    out = low_resolution(tf.constant(board), AugmentConfig(low_res_prob=0.0), seed=5).numpy()
    assert np.array_equal(out, board)


def test_low_resolution_sizes_follow_the_configured_range():
    from edgemask.training.augment import low_resolution

    # Vertical stripes 2 px on, 2 px off: shrinking 64 -> 16 px averages each period to gray,
    # shrinking 64 -> 32 px keeps them (one pixel on, one off), so the output tells the size used.
    stripes = np.zeros((1, 64, 64, 3), np.float32)
    stripes[:, :, (np.arange(64) % 4) < 2] = 255.0

    def degraded(size: int) -> np.ndarray:
        cfg = AugmentConfig(low_res_prob=1.0, low_res_min=size, low_res_max=size, low_res_aspect=0.0)
        return low_resolution(tf.constant(stripes), cfg, seed=1).numpy()

    assert np.allclose(degraded(16), 127.5, atol=1.0)
    assert degraded(32)[0, 32, :, 0].std() > 50


def test_occluders_touch_only_the_lower_face_and_come_from_another_crops_top():
    from edgemask.training.augment import occlude_lower_face

    n, side = 6, 40
    batch = np.zeros((n, side, side, 3), np.float32)
    batch[:, : int(0.4 * side)] = 200.0  # every crop's top 40 %: the occluder texture
    out = occlude_lower_face(tf.constant(batch), AugmentConfig(occlusion_prob=1.0), seed=3).numpy()
    untouched = int(0.33 * side)
    np.testing.assert_array_equal(out[:, :untouched], batch[:, :untouched])
    lower = out[:, side // 2 :]
    assert np.all(lower.max(axis=(1, 2, 3)) > 100.0)  # each crop got a blob from the donor's top
    assert np.all((lower > 0).mean(axis=(1, 2, 3)) < 0.9)  # and it covers part of the lower half only
    assert out.min() >= 0.0 and out.max() <= 200.0
    off = occlude_lower_face(tf.constant(batch), AugmentConfig(occlusion_prob=0.0), seed=3).numpy()
    np.testing.assert_array_equal(off, batch)
