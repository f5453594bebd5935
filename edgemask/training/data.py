"""Labelled face-crop folders -> uint8 arrays, read exactly as the runtime reads them (no TensorFlow).

A data folder holds ``with_mask/`` and ``without_mask/``, or ``train/``, ``val/``, ``test/`` splits of
them. Every image goes through :func:`edgemask.core.imageio.read_image` and
:func:`edgemask.core.ops.image.classifier_input`, so training sees the runtime's pixels. Unreadable files are
skipped with a warning and counted; missing or empty class folders are an error raised before training.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgemask.core.imageio import ImageError, list_images, read_image
from edgemask.core.ops.image import classifier_input, resize
from edgemask.labels import LABELS

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data folder that cannot be trained or evaluated on (missing or empty class folders)."""


@dataclass
class LabelledFiles:
    """Image paths with their class index (0 = with_mask)."""

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def extend(self, other: LabelledFiles) -> None:
        self.paths += other.paths
        self.labels += other.labels

    def counts(self) -> dict[str, int]:
        return {name: self.labels.count(i) for i, name in enumerate(LABELS)}

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Faces:
    """Decoded crops ready for the model: ``images`` (N, size, size, 3) RGB uint8, ``labels`` (N,) int."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(LABELS)}

    def joined(self, other: Faces) -> Faces:
        return Faces(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.labels, other.labels]),
            self.skipped + other.skipped,
        )


def class_files(folder: str | os.PathLike) -> LabelledFiles:
    """The images of ``folder/with_mask`` and ``folder/without_mask``; DataError if one is missing/empty."""
    folder = Path(folder)
    out = LabelledFiles()
    for index, name in enumerate(LABELS):
        sub = folder / name
        if not sub.is_dir():
            raise DataError(f"{folder}: missing class folder {name}/ (expected {', '.join(LABELS)})")
        paths = list_images(sub)
        if not paths:
            raise DataError(f"{sub}: no images (looked for common image suffixes)")
        out.paths += paths
        out.labels += [index] * len(paths)
    return out


def has_splits(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is organised as train/ (+ val/, test/) rather than class folders."""
    return (Path(folder) / "train").is_dir()


def gather(folders: Sequence[str | os.PathLike], split: str) -> LabelledFiles:
    """Files of ``split`` from each data folder; folders without splits count as training data only."""
    out = LabelledFiles()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder")
        if has_splits(folder):
            if (folder / split).is_dir():
                out.extend(class_files(folder / split))
        elif split == "train":
            out.extend(class_files(folder))
    return out


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of every class held out, chosen by a seeded shuffle."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held.append(idx[: max(1, round(fraction * idx.size))])
    held_out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(labels.size), held_out)
    return keep, held_out


def subset(files: LabelledFiles, index: np.ndarray) -> LabelledFiles:
    return LabelledFiles([files.paths[i] for i in index], [files.labels[i] for i in index])


def load_faces(
    files: LabelledFiles, size: int, desc: str = "reading", cache_dir: Path | None = None
) -> Faces:
    """Decode and resize every file; bad files are skipped with a warning and listed in ``skipped``.

    With ``cache_dir`` the arrays are kept in an ``.npz`` named by a hash of the paths, their sizes and
    mtimes and ``size``, so repeated runs (resume, size comparisons) skip the decoding.
    """
    cache = _cache_path(files, size, cache_dir) if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return Faces(z["images"], z["labels"], [str(s) for s in z["skipped"]])
    images = np.zeros((len(files), size, size, 3), dtype=np.uint8)
    keep = np.zeros(len(files), dtype=bool)
    skipped: list[str] = []
    for i, path in enumerate(tqdm(files.paths, desc=desc, unit="img", mininterval=2.0, leave=False)):
        try:
            images[i] = classifier_input(read_image(path), size)
            keep[i] = True
        except (ImageError, ValueError) as e:
            log.warning("skipping %s", e)
            skipped.append(str(path))
    if skipped:
        log.warning("%s: skipped %d unreadable file(s) of %d", desc, len(skipped), len(files))
    faces = Faces(images[keep], np.asarray(files.labels, dtype=np.int64)[keep], skipped)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".part.npz")
        np.savez(tmp, images=faces.images, labels=faces.labels, skipped=np.array(skipped, dtype=str))
        os.replace(tmp, cache)
    return faces


def _cache_path(files: LabelledFiles, size: int, cache_dir: Path) -> Path:
    h = hashlib.sha256(str(size).encode())
    for p, y in zip(files.paths, files.labels, strict=True):
        st = p.stat()
        h.update(f"{p}\0{y}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Path(cache_dir) / f"faces_{size}_{h.hexdigest()[:16]}.npz"


def with_low_res_copies(faces: Faces, sizes: Sequence[int]) -> Faces:
    """``faces`` plus one copy of each shrunk to a small width and enlarged back, the widths cycling
    through ``sizes``: a validation set that also measures small, blurry faces. Deterministic."""
    size = faces.images.shape[1]
    copies = np.empty_like(faces.images)
    for i, image in enumerate(faces.images):
        small = sizes[i % len(sizes)]
        copies[i] = resize(resize(image, (small, small)), (size, size))
    return Faces(
        np.concatenate([faces.images, copies]), np.concatenate([faces.labels, faces.labels]), faces.skipped
    )


def class_weights(labels: np.ndarray, unmasked_factor: float = 1.0) -> dict[int, float]:
    """Weights inversely proportional to class frequency (averaging 1 over the samples), the unmasked
    class then multiplied by ``unmasked_factor``: calling a bare face masked (FAR) is the costlier error."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    if (counts == 0).any():
        missing = [LABELS[i] for i in np.flatnonzero(counts == 0)]
        raise DataError(f"no training samples of {', '.join(missing)}")
    weights = {i: float(labels.size / (len(LABELS) * c)) for i, c in enumerate(counts)}
    weights[LABELS.index("without_mask")] *= unmasked_factor
    return weights
