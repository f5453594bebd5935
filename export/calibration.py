"""Real images for int8 calibration, prepared exactly as the runtime prepares its inputs.

Defaults keep the gate honest: the classifier calibrates on ``mask12k/train`` crops (the gate measures
on ``mask12k/test`` and scene crops); the detector calibrates on ``rmfd_mix`` photos (faces and whole
people), never on ``scenes_dev``, where the detector gate runs.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgemask.imageio import ImageError, list_images, read_image
from edgemask.preprocess import classifier_input

log = logging.getLogger("edgemask.export")

MIN_IMAGES = 300
"""Fewer calibration images than this still work but give noisier int8 ranges: warn."""
DEFAULT_DETECTOR_DIR = "rmfd_mix"
DEFAULT_CLASSIFIER_DIR = "mask12k/train"


class CalibrationError(ValueError):
    """No usable calibration images."""


@dataclass(frozen=True)
class Calibration:
    """Model-ready float32 batches of one image each, and where they came from."""

    samples: tuple[np.ndarray, ...]
    folder: Path
    skipped: int

    def describe(self) -> dict[str, object]:
        """JSON for the metadata; the folder as ``mask12k/train`` (its last two parts) unless top-level."""
        parts = self.folder.parts[-2:] if self.folder.parent.name != "datasets" else self.folder.parts[-1:]
        return {"folder": "/".join(parts), "images": len(self.samples), "skipped": self.skipped}


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


def load_calibration(folder: str | os.PathLike, limit: int, prepare) -> Calibration:
    """Read, prepare (``image_bgr -> HWC array``) and batch the picked images; skip unreadable ones."""
    folder = Path(folder)
    samples, skipped = [], 0
    for path in pick_files(folder, limit):
        try:
            samples.append(prepare(read_image(path))[None].astype(np.float32))
        except ImageError as e:
            log.warning("calibration: skipping %s", e)
            skipped += 1
    if not samples:
        raise CalibrationError(f"{folder}: none of the calibration images could be read")
    if len(samples) < MIN_IMAGES:
        log.warning(
            "calibration: only %d images from %s (want at least %d); int8 ranges may be noisy",
            len(samples),
            folder,
            MIN_IMAGES,
        )
    return Calibration(tuple(samples), folder, skipped)


def detector_calibration(folder: str | os.PathLike, size: tuple[int, int], limit: int) -> Calibration:
    """Whole photos as BGR ``size`` (h, w), resized like the runtime detector (bilinear)."""
    h, w = size
    return load_calibration(folder, limit, lambda im: cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR))


def classifier_calibration(folder: str | os.PathLike, size: int, limit: int) -> Calibration:
    """Face crops as RGB ``size``×``size``, via the runtime's own ``classifier_input``."""
    return load_calibration(folder, limit, lambda im: classifier_input(im, size))
