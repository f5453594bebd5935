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
    """Resize to ``(height, width)`` with the same pixels on every CPU and OpenCV build.

    OpenCV's ``INTER_LINEAR`` (when shrinking) and ``INTER_AREA`` give different pixels on arm64 and
    x86-64 with OpenCV 5.0; ``INTER_LINEAR_EXACT`` does not (``scripts/preprocessing_digests.py``). So every
    step is bit-exact bilinear, and a shrink first halves the image while it stays at least twice the
    target: a halving averages 2×2 blocks exactly as area averaging does, so small faces do not alias.
    """
    h, w = size
    while image.shape[0] >= 2 * h and image.shape[1] >= 2 * w:
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = cv2.resize(image, half, interpolation=cv2.INTER_LINEAR_EXACT)
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR_EXACT)


def classifier_input(face_bgr: np.ndarray, size: int) -> np.ndarray:
    """A face crop as the classifier wants it: RGB uint8, ``size``×``size``. Normalization is in the model."""
    return cv2.cvtColor(resize(face_bgr, (size, size)), cv2.COLOR_BGR2RGB)
