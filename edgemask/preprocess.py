"""Pure image functions shared by training, export and the runtime, so every stage sees the same pixels."""

from __future__ import annotations

import cv2
import numpy as np


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGRA, 16-bit, float in [0, 1]) as 3-channel uint8 BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"unsupported image shape {image.shape}")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``(height, width)``: area averaging when shrinking, bilinear when enlarging."""
    h, w = size
    if image.shape[0] == h and image.shape[1] == w:
        return image
    shrinking = image.shape[0] * image.shape[1] > h * w
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def classifier_input(face_bgr: np.ndarray, size: int) -> np.ndarray:
    """A face crop as the classifier wants it: RGB uint8, ``size``×``size``. Normalization is in the model."""
    return cv2.cvtColor(resize(face_bgr, (size, size)), cv2.COLOR_BGR2RGB)


def expand_box(box: np.ndarray, margin: float) -> np.ndarray:
    """Grow ``[x1, y1, x2, y2]`` boxes by ``margin`` of their width/height on every side."""
    box = np.asarray(box, dtype=np.float32)
    w = box[..., 2] - box[..., 0]
    h = box[..., 3] - box[..., 1]
    d = np.stack([-w, -h, w, h], axis=-1) * margin
    return box + d


def clamp_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer pixel boxes inside a ``width``×``height`` image; x2 > x1 and y2 > y1 whenever the box
    overlaps the image at all (a degenerate box gets one pixel)."""
    box = np.asarray(box, dtype=np.float64)
    x1 = np.clip(np.floor(box[..., 0]), 0, width - 1)
    y1 = np.clip(np.floor(box[..., 1]), 0, height - 1)
    x2 = np.clip(np.ceil(box[..., 2]), x1 + 1, width)
    y2 = np.clip(np.ceil(box[..., 3]), y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=-1).astype(np.int64)


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of an already clamped integer box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return image[y1:y2, x1:x2]
