"""Random distortions for training batches, applied in the tf.data pipeline (never inside the model).

TensorFlow is imported only when an augmenter is built, so the config is cheap to import.
Besides the usual flips, rotations, shears, zoom, shifts and colour jitter, four distortions target
what the classifier meets at run time: detector boxes that are looser or tighter than the training
crops (zoom with independent height/width factors); lower faces hidden by things that are not masks
(hands, phones, paper, the head in front in a crowd: :func:`cover_lower_face`, bare faces mostly);
masks of any colour (:func:`recolour_masks`, masked faces only); and faces only 6-48 px wide in the frame
(:func:`low_resolution`: blur, downscale, JPEG, then upscale back as the runtime's resize does), for
both classes alike so that a small face is no hint of either label.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    shear: float = 0.1
    zoom: float = 0.25
    """Zoom range +-: negative factors crop tighter, positive ones pad like a loose detector box."""
    shift: float = 0.1
    brightness: tuple[float, float] = (-0.35, 0.2)
    """Darkening reaches further than brightening: crowds and indoor frames are often dim."""
    contrast: float = 0.4
    saturation: tuple[float, float] = (0.25, 0.7)
    """Keras's scale: 0.5 keeps colours, 0 is gray."""
    grayscale_prob: float = 0.15
    occlusion_prob: float = 0.0
    """Share of bare (without_mask) crops whose mouth gets covered by an occluder that is not a mask:
    another crop's hair/forehead/skin, a patch of a scene's background (phones, paper, clothes, hands)
    or a flat card, as a soft ellipse or a rotated rectangle, so a covered mouth alone is no "mask"."""
    occlusion_masked_prob: float = 0.0
    """The same for masked crops (a hand or phone in front of a mask), so an occluder is no "no mask"."""
    mask_hue_prob: float = 0.0
    """Share of masked crops whose lower half turns a random hue (masks come in every colour)."""
    low_res_prob: float = 0.7
    low_res_min: int = 6
    low_res_max: int = 48
    low_res_aspect: float = 0.2
    low_res_blur: float = 0.0
    """Up to this share of a 3×3 blur mixed in at the small size (soft focus, motion, compression)."""
    low_res_jpeg_prob: float = 0.0
    """Share of the low-resolution crops JPEG-compressed at the small size (quality 30-90)."""

    def as_dict(self) -> dict:
        return asdict(self)


def low_resolution(images: tf.Tensor, cfg: AugmentConfig, seed: int) -> tf.Tensor:
    """Per image, with probability ``low_res_prob``: shrink (area) to a log-uniform random width in
    [low_res_min, low_res_max] px with some aspect jitter, blur a little and JPEG-compress (as
    configured) at that size, then enlarge back (bilinear)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    lo, hi = math.log(cfg.low_res_min), math.log(cfg.low_res_max)
    sizes = tf.exp(tf.random.uniform([n], lo, hi, seed=seed))
    aspect = tf.exp(tf.random.uniform([n], -cfg.low_res_aspect, cfg.low_res_aspect, seed=seed + 1))
    small_w = tf.cast(tf.round(sizes), tf.int32)
    small_h = tf.maximum(tf.cast(tf.round(sizes * aspect), tf.int32), 2)
    apply = tf.random.uniform([n], seed=seed + 2) < cfg.low_res_prob
    blur = tf.random.uniform([n], 0.0, cfg.low_res_blur, seed=seed + 3)
    jpeg = tf.random.uniform([n], seed=seed + 4) < cfg.low_res_jpeg_prob
    quality = tf.random.uniform([n], 30, 91, dtype=tf.int32, seed=seed + 5)
    kernel = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.tile((kernel[:, None] * kernel[None, :])[:, :, None, None], [1, 1, 3, 1])

    def degrade(args: tuple[tf.Tensor, ...]) -> tf.Tensor:
        image, h, w, on, mix, compress, q = args
        small = tf.image.resize(image, tf.stack([h, w]), method="area")
        padded = tf.pad(small[None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]
        small = (1.0 - mix) * small + mix * blurred
        small = tf.cond(
            compress,
            lambda: 255.0 * tf.image.adjust_jpeg_quality(tf.clip_by_value(small, 0.0, 255.0) / 255.0, q),
            lambda: small,
        )
        back = tf.image.resize(small, [height, width], method="bilinear")
        return tf.where(on, back, image)

    return tf.map_fn(
        degrade,
        (images, small_h, small_w, apply, blur, jpeg, quality),
        fn_output_signature=tf.TensorSpec(images.shape[1:], tf.float32),
    )


OCCLUDER_SOURCE = 0.4
"""Occluders come from the top 40 % of another crop, above where a mask starts."""


def cover_lower_face(
    images: tf.Tensor,
    on: tf.Tensor,
    bank: tf.Tensor | None,
    seed: int,
    shapes: tuple[str, ...] = ("ellipse", "rectangle"),
) -> tf.Tensor:
    """Where ``on`` (bool ``(N,)``), blend a soft-edged occluder over the lower face (centre in the lower
    40 %; rows above 0.32 of the height never change). Its texture is the next crop's upper part (hair,
    forehead, skin: never mask fabric), a patch of ``bank`` (``(M, h, w, 3)`` float pixels of scene
    backgrounds, if given) or a flat card with a little noise; its shape an ellipse (hand, head) or a
    rotated rectangle (phone, paper, banknote), as ``shapes`` allows."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    donors = tf.roll(images, shift=1, axis=0)[:, : max(1, int(OCCLUDER_SOURCE * height))]
    texture = tf.image.resize(donors, [height, width], method="bilinear")

    def uniform(lo: float, hi: float, k: int, shape=None) -> tf.Tensor:
        return tf.random.uniform(shape if shape is not None else [n, 1, 1], lo, hi, seed=seed + k)

    if bank is not None:
        pick = tf.random.uniform([n], 0, tf.shape(bank)[0], dtype=tf.int32, seed=seed + 10)
        patches = tf.image.resize(tf.gather(bank, pick), [height, width], method="bilinear")
        card = uniform(0.0, 255.0, 11, [n, 1, 1, 3]) + tf.random.normal(
            [n, height, width, 3], stddev=6.0, seed=seed + 12
        )
        source = uniform(0.0, 1.0, 13)[..., None]
        texture = tf.where(source < 0.4, texture, tf.where(source < 0.85, patches, card))
    cx, cy = uniform(0.15, 0.85, 0), uniform(0.6, 1.0, 1)
    rx, ry = uniform(0.15, 0.4, 2), uniform(0.12, 0.28, 3)
    ys = (tf.range(height, dtype=tf.float32)[None, :, None] + 0.5) / height
    xs = (tf.range(width, dtype=tf.float32)[None, None, :] + 0.5) / width
    ellipse = tf.clip_by_value(4.0 * (1.0 - ((xs - cx) / rx) ** 2 - ((ys - cy) / ry) ** 2), 0.0, 1.0)
    alpha = ellipse
    if "rectangle" in shapes:
        angle = uniform(-0.6, 0.6, 5)
        u = (xs - cx) * tf.cos(angle) + (ys - cy) * tf.sin(angle)
        v = -(xs - cx) * tf.sin(angle) + (ys - cy) * tf.cos(angle)
        edge = tf.minimum(rx - tf.abs(u), ry - tf.abs(v))
        rectangle = tf.clip_by_value(0.5 + 40.0 * edge, 0.0, 1.0)
        alpha = tf.where(uniform(0.0, 1.0, 6) < 0.5, ellipse, rectangle) if "ellipse" in shapes else rectangle
    top = tf.cast(ys > 0.32, tf.float32)
    alpha = (alpha * top * tf.cast(on, tf.float32)[:, None, None])[..., None]
    return images * (1.0 - alpha) + texture * alpha


def recolour_masks(images: tf.Tensor, on: tf.Tensor, seed: int) -> tf.Tensor:
    """Where ``on``, rotate the hue of the lower half (soft ramp from 0.45 to 0.6 of the height) by a
    random angle: a masked face in another colour of mask. Luma is kept (YIQ chroma rotation)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height = images.shape[1]
    to_yiq = tf.constant([[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]])
    yiq = tf.linalg.matmul(images, to_yiq)
    theta = tf.random.uniform([n, 1, 1], 0.5, 2.0 * math.pi - 0.5, seed=seed)
    c, s = tf.cos(theta), tf.sin(theta)
    i, q = yiq[..., 1], yiq[..., 2]
    rotated = tf.stack([yiq[..., 0], c * i - s * q, s * i + c * q], axis=-1)
    back = tf.linalg.matmul(rotated, tf.linalg.inv(to_yiq))
    ys = (tf.range(height, dtype=tf.float32) + 0.5) / height
    ramp = tf.clip_by_value((ys - 0.45) / 0.15, 0.0, 1.0)[None, :, None, None]
    alpha = ramp * tf.cast(on, tf.float32)[:, None, None, None]
    return tf.clip_by_value(images * (1.0 - alpha) + back * alpha, 0.0, 255.0)


def make_augmenter(cfg: AugmentConfig, seed: int, bank: np.ndarray | None = None) -> Callable[..., tf.Tensor]:
    """A function from a float32 RGB batch in [0, 255] (and its labels, which the class-specific
    distortions need; without them both classes get the bare-face occluder rate) to a distorted batch of
    the same shape and range. ``bank``: ``(M, h, w, 3)`` uint8 background patches for occluders."""
    import keras
    import tensorflow as tf

    from edgemask.labels import LABELS

    masked = LABELS.index("with_mask")
    bank_tensor = None if bank is None or len(bank) == 0 else tf.constant(bank, tf.float32)
    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomShear(cfg.shear, cfg.shear, fill_mode="reflect", seed=seed + 2),
        keras.layers.RandomZoom(
            (-cfg.zoom, cfg.zoom), (-cfg.zoom, cfg.zoom), fill_mode="reflect", seed=seed + 3
        ),
        keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=seed + 4),
        keras.layers.RandomBrightness(cfg.brightness, value_range=(0.0, 255.0), seed=seed + 5),
        keras.layers.RandomContrast(cfg.contrast, value_range=(0.0, 255.0), seed=seed + 6),
        keras.layers.RandomSaturation(cfg.saturation, value_range=(0.0, 255.0), seed=seed + 8),
        keras.layers.RandomGrayscale(cfg.grayscale_prob, seed=seed + 9),
    ]

    def augment(images: tf.Tensor, labels: tf.Tensor | None = None) -> tf.Tensor:
        x = tf.cast(images, tf.float32)
        n = tf.shape(x)[0]
        is_masked = tf.zeros([n], tf.bool) if labels is None else tf.equal(labels, masked)
        if cfg.mask_hue_prob > 0:
            on = is_masked & (tf.random.uniform([n], seed=seed + 20) < cfg.mask_hue_prob)
            x = recolour_masks(x, on, seed + 21)
        for layer in layers:
            x = layer(x, training=True)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if cfg.occlusion_prob > 0 or cfg.occlusion_masked_prob > 0:
            rate = tf.where(is_masked, cfg.occlusion_masked_prob, cfg.occlusion_prob)
            on = tf.random.uniform([n], seed=seed + 22) < rate
            x = cover_lower_face(x, on, bank_tensor, seed + 10)
        if cfg.low_res_prob > 0:
            x = low_resolution(x, cfg, seed + 7)
        return tf.clip_by_value(x, 0.0, 255.0)

    return augment
