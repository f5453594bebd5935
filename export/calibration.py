"""Real images for int8 calibration, prepared exactly as the runtime prepares its inputs.

Defaults keep the gate honest: the classifier calibrates on the faces of ``scenes_train`` cut as the
runtime cuts them (the gate measures on ``mask12k/test`` and ``scenes_dev`` crops): real small,
upscaled faces set the int8 ranges, which clean studio crops did not; the detectors calibrate on
``scenes_train`` scenes fed as their runtime class feeds a frame at the operating point the exported
file records (every pass), never on ``scenes_dev``, where the detector gate runs.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemask.core.backends import Backend, BackendError
from edgemask.core.detectors import Pass, detector_for
from edgemask.core.imageio import ImageError, list_images, read_image
from edgemask.core.metadata import ModelMeta
from edgemask.core.ops.image import classifier_input

log = logging.getLogger("edgemask.export")

MIN_IMAGES = 300
"""Fewer calibration images than this still work but give noisier int8 ranges: warn."""
DEFAULT_DETECTOR_DIR = "scenes_train/images"
DEFAULT_CLASSIFIER_DIR = "scenes_train"


class CalibrationError(ValueError):
    """No usable calibration images."""


@dataclass(frozen=True)
class Calibration:
    """Model-ready float32 network inputs (every pass of every image), and where they came from."""

    samples: tuple[np.ndarray, ...]
    folder: Path
    images: int
    skipped: int

    def describe(self) -> dict[str, object]:
        """JSON for the metadata; the folder as ``mask12k/train`` (its last two parts) unless top-level."""
        parts = self.folder.parts[-2:] if self.folder.parent.name != "datasets" else self.folder.parts[-1:]
        return {
            "folder": "/".join(parts),
            "images": self.images,
            "inputs": len(self.samples),
            "skipped": self.skipped,
        }


def pick_files(folder: str | os.PathLike, limit: int, seed: int = 0) -> list[Path]:
    """Up to ``limit`` images of ``folder`` (recursively), a seeded random pick so every class appears."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: calibration folder not found")
    files = list_images(folder)
    if not files:
        raise CalibrationError(f"{folder}: no images to calibrate with")
    if len(files) > limit:
        files = sorted(random.Random(seed).sample(files, limit))
    return files


def load_calibration(
    folder: str | os.PathLike, limit: int, prepare: Callable[[np.ndarray], list[np.ndarray]]
) -> Calibration:
    """Read the picked images, turn each into its model inputs (``prepare``: BGR image -> NHWC batches)
    as float32; unreadable images are skipped with a warning."""
    folder = Path(folder)
    samples, images, skipped = [], 0, 0
    for path in pick_files(folder, limit):
        try:
            samples.extend(x.astype(np.float32) for x in prepare(read_image(path)))
            images += 1
        except ImageError as e:
            log.warning("calibration: skipping %s", e)
            skipped += 1
    if not samples:
        raise CalibrationError(f"{folder}: none of the calibration images could be read")
    if images < MIN_IMAGES:
        log.warning(
            "calibration: only %d images from %s (want at least %d); int8 ranges may be noisy",
            images,
            folder,
            MIN_IMAGES,
        )
    return Calibration(tuple(samples), folder, images, skipped)


class PlannedFile(Backend):
    """A model file not written yet: its metadata alone, so the runtime's detector class can build the
    network inputs it will be fed before there is a file to run."""

    def __init__(self, meta: ModelMeta) -> None:
        self.meta = meta
        self.path = Path(f"<{meta.family} file being exported>")
        self.name = "planned"

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        raise BackendError(f"{self.path}: not written yet, nothing to run")


def runtime_passes(meta: ModelMeta, image: np.ndarray) -> list[Pass]:
    """The network inputs the runtime builds for ``image`` from a file with ``meta``: its family's class at
    the operating point, input size and channel order the metadata records."""
    return detector_for(PlannedFile(meta)).passes(image)


def detector_calibration(folder: str | os.PathLike, meta: ModelMeta, limit: int) -> Calibration:
    """Whole scenes as the runtime's detector feeds them to a file with ``meta``."""
    return load_calibration(folder, limit, lambda im: [p.blob for p in runtime_passes(meta, im)])


def classifier_calibration(folder: str | os.PathLike, size: int, limit: int) -> Calibration:
    """Face crops as RGB ``size``×``size``, via the runtime's own ``classifier_input``: the images of a
    crop folder, or the annotated faces of a VOC scenes folder (``images/`` + ``annotations/``)."""
    if (Path(folder) / "annotations").is_dir():
        return scene_crop_calibration(folder, size, limit)
    return load_calibration(folder, limit, lambda im: [classifier_input(im, size)[None]])


def scene_crop_calibration(folder: str | os.PathLike, size: int, limit: int, seed: int = 0) -> Calibration:
    """A seeded pick of ``limit`` annotated faces of a scenes folder, grown by the pipeline's margin and
    clamped by the runtime's crop rule; the scene loader skips (and counts) bad scenes and boxes."""
    from edgemask.core.ops.boxes import crop, face_crop_boxes
    from edgemask.core.pipeline import DEFAULT_MARGIN
    from edgemask.evaluation.voc import load_scenes

    folder = Path(folder)
    faces: list[np.ndarray] = []
    scenes = 0
    loaded = load_scenes(folder, min_faces=1)
    for scene in loaded:
        h, w = scene.image.shape[:2]
        faces += [
            classifier_input(crop(scene.image, b), size)
            for b in face_crop_boxes(scene.boxes, DEFAULT_MARGIN, w, h)
        ]
        scenes += 1
    if not faces:
        raise CalibrationError(f"{folder}: no annotated faces to calibrate with")
    pick = sorted(random.Random(seed).sample(range(len(faces)), min(limit, len(faces))))
    samples = tuple(faces[i][None].astype(np.float32) for i in pick)
    if len(samples) < MIN_IMAGES:
        log.warning(
            "calibration: only %d face crops from %s (want at least %d)", len(samples), folder, MIN_IMAGES
        )
    return Calibration(samples, folder, scenes, sum(loaded.skipped.values()))
