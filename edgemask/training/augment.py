"""Random distortions for training batches, applied in the tf.data pipeline (never inside the model).

TensorFlow is imported only when an augmenter is built, so the config is cheap to import.
Besides the usual flips, rotations, shears, zoom, shifts and colour jitter, three distortions target
what the classifier meets at run time: detector boxes that are looser or tighter than the training
crops (zoom with independent height/width factors), lower faces partly hidden by things that are not
masks (hands, phones, the head in front in a crowd), and faces only 6-48 px wide in the frame
(downscale to a random small size, then upscale back, as the runtime's resize does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

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
    """Share of crops (either class) whose lower half gets a soft-edged blob of another crop's upper part
    (hair, forehead, eyes: never mask fabric), so a covered mouth alone does not mean "mask"."""
    low_res_prob: float = 0.7
    low_res_min: int = 6
    low_res_max: int = 48
    low_res_aspect: float = 0.2

    def as_dict(self) -> dict:
        return asdict(self)


def low_resolution(images: tf.Tensor, cfg: AugmentConfig, seed: int) -> tf.Tensor:
    """Per image, with probability ``low_res_prob``: shrink (area) to a log-uniform random width in
    [low_res_min, low_res_max] px with some aspect jitter, then enlarge back (bilinear)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    lo, hi = math.log(cfg.low_res_min), math.log(cfg.low_res_max)
    sizes = tf.exp(tf.random.uniform([n], lo, hi, seed=seed))
    aspect = tf.exp(tf.random.uniform([n], -cfg.low_res_aspect, cfg.low_res_aspect, seed=seed + 1))
    small_w = tf.cast(tf.round(sizes), tf.int32)
    small_h = tf.maximum(tf.cast(tf.round(sizes * aspect), tf.int32), 2)
    apply = tf.random.uniform([n], seed=seed + 2) < cfg.low_res_prob

    def degrade(args: tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
        image, h, w, on = args
        small = tf.image.resize(image, tf.stack([h, w]), method="area")
        back = tf.image.resize(small, [height, width], method="bilinear")
        return tf.where(on, back, image)

    return tf.map_fn(
        degrade,
        (images, small_h, small_w, apply),
        fn_output_signature=tf.TensorSpec(images.shape[1:], tf.float32),
    )


OCCLUDER_SOURCE = 0.4
"""Occluders come from the top 40 % of another crop, above where a mask starts."""


def occlude_lower_face(images: tf.Tensor, cfg: AugmentConfig, seed: int) -> tf.Tensor:
    """Per image, with probability ``occlusion_prob``: blend an ellipse (centre in the lower 40 %) of
    texture from the next crop's upper part over the face. Rows above 0.32 of the height never change,
    and the blob is mostly small enough that a mask stays partly visible."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    donors = tf.roll(images, shift=1, axis=0)[:, : max(1, int(OCCLUDER_SOURCE * height))]
    texture = tf.image.resize(donors, [height, width], method="bilinear")

    def uniform(lo: float, hi: float, k: int) -> tf.Tensor:
        return tf.random.uniform([n, 1, 1], lo, hi, seed=seed + k)

    cx, cy = uniform(0.15, 0.85, 0), uniform(0.6, 1.0, 1)
    rx, ry = uniform(0.15, 0.4, 2), uniform(0.12, 0.28, 3)
    ys = (tf.range(height, dtype=tf.float32)[None, :, None] + 0.5) / height
    xs = (tf.range(width, dtype=tf.float32)[None, None, :] + 0.5) / width
    inside = 1.0 - ((xs - cx) / rx) ** 2 - ((ys - cy) / ry) ** 2
    alpha = tf.clip_by_value(4.0 * inside, 0.0, 1.0)
    on = tf.cast(tf.random.uniform([n, 1, 1], seed=seed + 4) < cfg.occlusion_prob, tf.float32)
    alpha = (alpha * on)[..., None]
    return images * (1.0 - alpha) + texture * alpha


def make_augmenter(cfg: AugmentConfig, seed: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """A function from a float32 RGB batch in [0, 255] to a distorted batch of the same shape and range."""
    import keras
    import tensorflow as tf

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

    def augment(images: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if cfg.occlusion_prob > 0:
            x = occlude_lower_face(x, cfg, seed + 10)
        if cfg.low_res_prob > 0:
            x = low_resolution(x, cfg, seed + 7)
        return tf.clip_by_value(x, 0.0, 255.0)

    return augment
