"""Scenes for detector training: loaded once through :func:`edgemask.evaluation.voc.load_scenes` (bad
scenes skipped, warned about and counted there), split by a stable hash of the file name, and served as
batches of random views. Every annotated box is a face, whatever its mask class. No TensorFlow."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgemask.evaluation.voc import load_scenes
from edgemask.training.data import DataError
from edgemask.training.detector.augment import DetectorAugment, View, fitted_view, random_view


@dataclass(frozen=True)
class FaceScene:
    name: str
    image: np.ndarray
    faces: np.ndarray  # (K, 4) x1y1x2y2 pixels

    @property
    def smallest_face(self) -> float:
        """The side (square root of the area) of the scene's smallest labelled face."""
        sides = np.sqrt(np.prod(self.faces[:, 2:] - self.faces[:, :2], axis=1))
        return float(sides.min())


def is_held_out(name: str, fraction: float) -> bool:
    """Whether a scene validates: a stable hash of its file name, the same on every machine and run."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_face_scenes(
    folder: str | os.PathLike, limit: int | None = None
) -> tuple[list[FaceScene], Counter[str]]:
    """Every usable scene with at least one face, and what was skipped by reason; raises
    :class:`DataError` when none is left."""
    loaded = load_scenes(folder, limit, 1)
    scenes = [FaceScene(s.name, s.image, s.boxes.astype(np.float32)) for s in loaded]
    if not scenes:
        raise DataError(f"{folder}: no usable VOC scenes with faces ({dict(loaded.skipped) or 'none found'})")
    return scenes, loaded.skipped


def split_scenes(scenes: list[FaceScene], fraction: float) -> tuple[list[FaceScene], list[FaceScene]]:
    """``(train, held out)``, neither empty: with one scene, it serves both."""
    held = [s for s in scenes if is_held_out(s.name, fraction)]
    train = [s for s in scenes if not is_held_out(s.name, fraction)]
    if not held:
        held, train = train[-1:], train[:-1] or train
    if not train:
        train, held = held[:1], held[1:] or held
    return train, held


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # (B, S, S, 3) uint8 BGR
    faces: list[np.ndarray]  # per image (K, 4)
    reference_sides: np.ndarray  # (B,) the scene's smallest labelled face, scaled into the view


def batch_of(views: list[View], scenes: list[FaceScene]) -> Batch:
    return Batch(
        np.stack([v.image for v in views]),
        [v.boxes for v in views],
        np.array([s.smallest_face * v.scale for v, s in zip(views, scenes, strict=True)], np.float32),
    )


def train_batches(
    scenes: list[FaceScene],
    batch_size: int,
    size: int,
    cfg: DetectorAugment,
    seed: int,
    steps: int | None = None,
) -> Iterator[Batch]:
    """One epoch of random views in a seeded random order (same ``seed``, same epoch); the last partial
    batch is dropped so every step has one shape."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scenes))
    for b in range(steps_per_epoch(len(scenes), batch_size, steps)):
        chosen = [scenes[i] for i in order[b * batch_size : (b + 1) * batch_size]]
        views = [random_view(s.image, s.faces, size, cfg, rng) for s in chosen]
        yield batch_of(views, chosen)


def steps_per_epoch(n_scenes: int, batch_size: int, steps: int | None = None) -> int:
    full = n_scenes // batch_size
    return full if steps is None else min(steps, full)


def held_out_batches(scenes: list[FaceScene], batch_size: int, size: int) -> Iterator[Batch]:
    """Whole scenes at long side ``size``, in order, the last batch possibly short."""
    for b in range(0, len(scenes), batch_size):
        chosen = scenes[b : b + batch_size]
        yield batch_of([fitted_view(s.image, s.faces, size) for s in chosen], chosen)
