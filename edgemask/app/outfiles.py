"""Writing output files safely: names derived from untrusted sources stay inside the output folder, and
an existing file is never overwritten (a numbered suffix is added instead), so re-runs and name clashes
cannot destroy earlier results.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 120
MAX_NUMBERED = 100_000


def safe_name(text: str) -> str:
    """A single file-name part from any source name or path: folders joined with ``__``, ``..`` and empty
    parts dropped, anything but ``[A-Za-z0-9._-]`` replaced by ``_``, no leading dot, never empty."""
    parts = [p for p in re.split(r"[\\/]+", text) if p not in ("", ".", "..")]
    name = "__".join(UNSAFE_CHARS.sub("_", p) for p in parts).lstrip(".")
    return name[:MAX_NAME_CHARS] or "unnamed"


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing any result that would resolve outside ``folder``."""
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"{name!r} would escape {folder}")
    return path


def numbered(path: Path, k: int) -> Path:
    """``photo.jpg`` → ``photo-k.jpg``; ``k == 0`` is the path itself."""
    return path if k == 0 else path.with_name(f"{path.stem}-{k}{path.suffix}")


def write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` or, if that exists, to the first free ``path-1``, ``path-2``, ...

    Files are created exclusively (``O_EXCL``), so even concurrent writers never clobber each other.
    Returns the path written.
    """
    for k in range(MAX_NUMBERED):
        candidate = numbered(path, k)
        try:
            with open(candidate, "xb") as f:
                f.write(data)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{path}: no free numbered name left")


def reserve_new(path: Path) -> Path:
    """Create an empty placeholder at the first free numbered variant of ``path`` (for writers such as
    ``cv2.VideoWriter`` that open the file by name themselves)."""
    return write_new(path, b"")


def write_image_new(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    """Encode ``image`` by ``path``'s suffix and write it with :func:`write_new`."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode {path.suffix!r} images")
    return write_new(path, encoded.tobytes())


def remove_if_empty(path: Path) -> None:
    """Drop a placeholder from :func:`reserve_new` that never received data."""
    try:
        if path.stat().st_size == 0:
            os.remove(path)
    except FileNotFoundError:
        pass
