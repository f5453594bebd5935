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

IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"P5",  # PGM
    b"P6",  # PPM
)
"""How the formats OpenCV decodes begin (WebP also has ``WEBP`` at offset 8, see :func:`is_image_data`)."""
SNIFF_BYTES = 12


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


def is_image_data(head: bytes) -> bool:
    """Whether a file's first bytes are those of an image format OpenCV decodes."""
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def is_image_file(path: str | os.PathLike) -> bool:
    """An image by its name, or by its content when its name says nothing (``IMG_0001``, a hash): a file
    with another suffix (``README.txt``, ``clip.mp4``) is not opened."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            return is_image_data(f.read(SNIFF_BYTES))
    except OSError:
        return False


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (:func:`is_image_file`), sorted, so runs are reproducible."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_file(p))


def iter_images(paths: list[Path]) -> Iterator[tuple[Path, np.ndarray | ImageError]]:
    """Yield ``(path, image)`` or ``(path, error)``: the caller decides to warn and count."""
    for p in paths:
        try:
            yield p, read_image(p)
        except ImageError as e:
            yield p, e
