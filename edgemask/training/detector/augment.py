"""Random views of a scene for detector training: pixels, boxes and landmarks move together.

Geometry: a random square crop of 0.5–1.5 × the scene's short side (parts outside the scene are black,
as the runtime's padding), scaled with the runtime's own resize to the training size; sometimes scaled
smaller still and padded at the bottom and right as the runtime pads, so faces under 16 px appear; a
horizontal flip. Photometric: brightness, contrast, colour balance, blur and JPEG quality. Pure numpy and
OpenCV, seeded by the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgemask.core.ops.image import resize
from edgemask.core.ops.yunet import input_geometry

FLIP_LANDMARKS = (1, 0, 2, 4, 3)
"""Landmark order after a horizontal flip: the right eye becomes the left one, the mouth corners swap."""
MIN_FACE_PX = 2.0
"""Faces narrower than this after scaling are dropped from the targets: too small to learn from."""


@dataclass(frozen=True)
class DetectorAugment:
    crop_min: float = 0.5
    crop_max: float = 1.5
    shrink_prob: float = 0.3
    shrink_min: float = 0.5
    flip_prob: float = 0.5
    brightness: float = 32.0
    contrast: float = 0.25
    colour: float = 0.1
    blur_prob: float = 0.15
    jpeg_prob: float = 0.3
    jpeg_quality: tuple[int, int] = (35, 90)


@dataclass(frozen=True)
class View:
    """A training view: ``image`` ``size``×``size`` BGR uint8, ``boxes`` ``(K, 4)`` in its pixels and
    ``scale``, how much the scene was enlarged (its smallest face's side × scale is the view's
    reference face size)."""

    image: np.ndarray
    boxes: np.ndarray
    scale: float


def crop_square(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side``×``side`` window at ``(x0, y0)``, black where it leaves the image."""
    h, w = image.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def crop_boxes(boxes: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Boxes moved into a crop window: those whose centre lies inside it, clipped to it."""
    moved = boxes - np.array([x0, y0, x0, y0], np.float64)
    centre = (moved[:, :2] + moved[:, 2:]) / 2
    inside = np.all((centre >= 0) & (centre < side), axis=1)
    return np.clip(moved[inside], 0, side)


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Boxes of a horizontally flipped ``width``-pixel image."""
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """``(K, 10)`` landmarks of a horizontally flipped image: mirrored, left and right swapped."""
    points = landmarks.reshape(len(landmarks), -1, 2)[:, list(FLIP_LANDMARKS)].copy()
    points[..., 0] = width - points[..., 0]
    return points.reshape(len(landmarks), -1)


def photometric(image: np.ndarray, cfg: DetectorAugment, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and per-channel colour gain, then maybe a blur and a JPEG round trip."""
    x = image.astype(np.float32)
    gain = 1 + rng.uniform(-cfg.contrast, cfg.contrast)
    colour = 1 + rng.uniform(-cfg.colour, cfg.colour, 3).astype(np.float32)
    mean = x.mean()
    x = (x - mean) * gain + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    x = np.clip(x * colour, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur_prob:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return x


def random_view(
    image: np.ndarray, boxes: np.ndarray, size: int, cfg: DetectorAugment, rng: np.random.Generator
) -> View:
    """One random training view of a scene (see the module docstring)."""
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * rng.uniform(cfg.crop_min, cfg.crop_max)))
    x0 = int(rng.integers(min(0, w - side), max(0, w - side) + 1))
    y0 = int(rng.integers(min(0, h - side), max(0, h - side) + 1))
    content = size
    if rng.random() < cfg.shrink_prob:
        content = max(32, round(size * rng.uniform(cfg.shrink_min, 1.0)))
    scale = content / side
    pixels = photometric(resize(crop_square(image, x0, y0, side), (content, content)), cfg, rng)
    view = np.zeros((size, size, 3), np.uint8)
    view[:content, :content] = pixels
    kept = crop_boxes(boxes, x0, y0, side) * scale
    kept = kept[np.minimum(kept[:, 2] - kept[:, 0], kept[:, 3] - kept[:, 1]) >= MIN_FACE_PX]
    if rng.random() < cfg.flip_prob:
        view = view[:, ::-1].copy()
        kept = flip_boxes(kept, size)
    return View(view, kept.astype(np.float32), scale)


def fitted_view(image: np.ndarray, boxes: np.ndarray, size: int) -> View:
    """The deterministic validation view: the whole scene with its long side at ``size``, padded at the
    bottom and right as the runtime pads."""
    h, w = image.shape[:2]
    geometry = input_geometry(h, w, size, 1)
    resized = geometry.resized
    view = np.zeros((size, size, 3), np.uint8)
    view[: resized[0], : resized[1]] = resize(image, resized)
    sx, sy = resized[1] / w, resized[0] / h
    return View(view, (boxes * np.array([sx, sy, sx, sy])).astype(np.float32), geometry.scale)
