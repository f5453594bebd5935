"""Writing output files safely: names derived from untrusted sources stay inside the output folder, and
an existing file is never overwritten (a numbered suffix is added instead), so re-runs and name clashes
cannot destroy earlier results.
"""

from __future__ import annotations

import os
import re
import unicodedata
from itertools import groupby
from pathlib import Path

import cv2
import numpy as np

SEPARATORS = re.compile(r"[\\/]+")
RESERVED_CHARS = frozenset(':*?"<>|')
"""Characters some file system or shell treats specially (Windows forbids them all)."""
MAX_NAME_BYTES = 200
"""File systems limit a name to 255 bytes (not characters: a Cyrillic letter takes 2, a CJK one 3); this
leaves room for a numbered suffix and a ``_face12.jpg`` tail."""
MAX_NUMBERED = 100_000


def is_safe_char(char: str) -> bool:
    """Letters, digits, marks, symbols and spaces of any script; not control, format, surrogate or
    unassigned characters, line or paragraph separators, nor the reserved punctuation."""
    category = unicodedata.category(char)
    return char not in RESERVED_CHARS and category[0] != "C" and category not in ("Zl", "Zp")


def clip_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that is at most ``limit`` bytes in UTF-8."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def safe_name(text: str) -> str:
    """A single file-name part from any source name or path: folders joined with ``__``, ``..`` and empty
    parts dropped, unsafe characters (:func:`is_safe_char`) replaced by ``_`` (runs of them by one), no
    leading dot, at most :data:`MAX_NAME_BYTES`, never empty. ``фото 1 ✓.jpg`` stays ``фото 1 ✓.jpg``."""
    parts = [p for p in SEPARATORS.split(text) if p not in ("", ".", "..")]
    name = "__".join(replace_unsafe(p) for p in parts).lstrip(".")
    return clip_bytes(name, MAX_NAME_BYTES) or "unnamed"


def replace_unsafe(part: str) -> str:
    """``part`` with every run of unsafe characters replaced by one ``_``."""
    return "".join("".join(run) if safe else "_" for safe, run in groupby(part, is_safe_char))


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
