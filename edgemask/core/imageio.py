"""Reading images from disk robustly: EXIF rotation, gray, alpha, 16-bit, CMYK all become BGR uint8."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jfif", ".pgm", ".ppm"}
)


class ImageError(ValueError):
    """A file that is not a readable image. Batch jobs catch it, warn, count and go on."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` as 3-channel uint8 BGR, upright per its EXIF orientation."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from e
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    return decode_image(data, str(path))


def decode_image(data: np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes; see :func:`read_image`. OpenCV refuses absurdly large images itself."""
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageError(f"{name}: cannot decode ({e.err})") from e
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a decodable image")
    return image


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by suffix, sorted, so runs are reproducible."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def iter_images(paths: list[Path]) -> Iterator[tuple[Path, np.ndarray | ImageError]]:
    """Yield ``(path, image)`` or ``(path, error)``: the caller decides to warn and count."""
    for p in paths:
        try:
            yield p, read_image(p)
        except ImageError as e:
            yield p, e
