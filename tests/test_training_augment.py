"""Augmentation keeps shapes and the 0-255 range, and the low-resolution pass really removes detail."""

import numpy as np
import pytest

from edgemask.training.classifier.augment import AugmentConfig

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


def _checkerboard(n: int, size: int) -> np.ndarray:
    board = ((np.indices((size, size)).sum(axis=0) % 2) * 255).astype(np.float32)
    return np.repeat(np.repeat(board[None, :, :, None], n, axis=0), 3, axis=3)


def test_full_augmenter_keeps_shape_dtype_and_range():
    from edgemask.training.classifier.augment import make_augmenter

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    out = make_augmenter(AugmentConfig(occlusion_prob=0.5), seed=1)(tf.constant(batch)).numpy()
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, batch)  # something changed


def test_low_resolution_always_on_blurs_a_checkerboard_to_gray():
    from edgemask.training.classifier.augment import low_resolution

    cfg = AugmentConfig(low_res_prob=1.0, low_res_min=8, low_res_max=8, low_res_aspect=0.0)
    out = low_resolution(tf.constant(_checkerboard(3, 64)), cfg, seed=5).numpy()
    assert out.shape == (3, 64, 64, 3)
    # Area-averaging a 1-px checkerboard down to 8 px leaves mid-gray; the original alternates 0/255.
    assert np.allclose(out, 127.5, atol=1.0)


def test_low_resolution_off_is_identity():
    from edgemask.training.classifier.augment import low_resolution

    board = _checkerboard(2, 32)
    out = low_resolution(tf.constant(board), AugmentConfig(low_res_prob=0.0), seed=5).numpy()
    assert np.array_equal(out, board)


def test_low_resolution_sizes_follow_the_configured_range():
    from edgemask.training.classifier.augment import low_resolution

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
    from edgemask.training.classifier.augment import cover_lower_face

    n, side = 6, 40
    batch = np.zeros((n, side, side, 3), np.float32)
    batch[:, : int(0.4 * side)] = 200.0  # every crop's top 40 %: the occluder texture
    on = tf.ones([n], tf.bool)
    out = cover_lower_face(tf.constant(batch), on, None, seed=3).numpy()
    untouched = int(0.32 * side)
    np.testing.assert_array_equal(out[:, :untouched], batch[:, :untouched])
    lower = out[:, side // 2 :]
    assert np.all(lower.max(axis=(1, 2, 3)) > 100.0)  # each crop got a blob from the donor's top
    assert np.all((lower > 0).mean(axis=(1, 2, 3)) < 0.9)  # and it covers part of the lower half only
    assert out.min() >= 0.0 and out.max() <= 200.0
    off = cover_lower_face(tf.constant(batch), tf.zeros([n], tf.bool), None, seed=3).numpy()
    np.testing.assert_array_equal(off, batch)


def test_occluders_from_the_bank_bring_its_texture():
    from edgemask.training.classifier.augment import cover_lower_face

    n, side = 32, 32
    batch = np.zeros((n, side, side, 3), np.float32)  # donors are black too: any colour is bank or card
    bank = tf.constant(np.full((3, 8, 8, 3), [0.0, 255.0, 0.0], np.float32))  # pure green patches
    out = cover_lower_face(tf.constant(batch), tf.ones([n], tf.bool), bank, seed=1).numpy()
    greenish = (out[..., 1] > 100) & (out[..., 0] < 20) & (out[..., 2] < 20)
    assert 0 < greenish.any(axis=(1, 2)).sum() < n  # some crops got the bank, the others donor or card
    assert not greenish[:, : int(0.32 * side)].any()


def test_recolour_masks_changes_hue_of_the_lower_half_only_and_keeps_luma():
    from edgemask.training.classifier.augment import recolour_masks

    batch = np.zeros((2, 20, 20, 3), np.float32)
    batch[...] = (30.0, 120.0, 200.0)  # a blue mask colour everywhere
    out = recolour_masks(tf.constant(batch), tf.constant([True, False]), seed=4).numpy()
    np.testing.assert_allclose(out[0, :9], batch[0, :9], atol=1e-3)  # rows above 0.45 untouched
    np.testing.assert_allclose(out[1], batch[1], atol=1e-3)  # off: unchanged
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(out[0, 15] @ luma - batch[0, 15] @ luma).max() < 1.0  # same brightness...
    assert np.abs(out[0, 15] - batch[0, 15]).max() > 20.0  # ...another colour


def test_jpeg_and_blur_at_the_small_size_keep_range_and_shape():
    from edgemask.training.classifier.augment import low_resolution

    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (4, 48, 48, 3)).astype(np.float32)
    cfg = AugmentConfig(
        low_res_prob=1.0, low_res_min=12, low_res_max=12, low_res_blur=1.0, low_res_jpeg_prob=1.0
    )
    out = low_resolution(tf.constant(batch), cfg, seed=2).numpy()
    assert out.shape == batch.shape and out.min() >= 0.0 and out.max() <= 255.0
    plain = AugmentConfig(low_res_prob=1.0, low_res_min=12, low_res_max=12, low_res_aspect=0.0)
    # blur and JPEG remove even more detail than the plain shrink
    assert (
        out.std(axis=(1, 2)).mean()
        < low_resolution(tf.constant(batch), plain, seed=2).numpy().std(axis=(1, 2)).mean()
    )


def test_class_specific_distortions_follow_the_labels():
    from edgemask.training.classifier.augment import make_augmenter

    cfg = AugmentConfig(
        rotation_deg=0.0, shear=0.0, zoom=0.0, shift=0.0, brightness=(0.0, 0.0), contrast=0.0,
        saturation=(0.5, 0.5), grayscale_prob=0.0, low_res_prob=0.0,
        occlusion_prob=1.0, occlusion_masked_prob=0.0, mask_hue_prob=0.0,
    )  # fmt: skip
    batch = np.zeros((4, 32, 32, 3), np.float32)
    batch[:, :12] = 220.0  # bright tops: occluders taken from them show up below
    labels = tf.constant([0, 1, 0, 1])  # with_mask, without_mask, ...
    out = make_augmenter(cfg, seed=0)(tf.constant(batch), labels).numpy()
    covered = out[:, 16:].max(axis=(1, 2, 3)) > 50
    assert covered.tolist() == [False, True, False, True]  # only the bare faces got an occluder
