"""VOC scenes as the benchmarks use them: images with ground truth in the metrics' label indices."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgemask import LABELS
from edgemask.assets import dataset
from edgemask.detection_metrics import IGNORE
from edgemask.imageio import ImageError, read_image
from edgemask.voc import VocAnnotation, iter_scenes


@dataclass(frozen=True)
class Scene:
    name: str
    image: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    """Index into LABELS; IGNORE for ``mask_weared_incorrect`` and VOC ``difficult`` faces."""


def truth(annotation: VocAnnotation) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([o.box for o in annotation.objects], dtype=np.float64).reshape(-1, 4)
    labels = np.array(
        [
            LABELS.index(o.name) if o.name in LABELS and not o.difficult else IGNORE
            for o in annotation.objects
        ],
        dtype=np.int64,
    )
    return boxes, labels


def scenes_folder(folder: str | os.PathLike | None) -> os.PathLike:
    """The folder given, or scenes_dev from the shared assets."""
    return folder if folder is not None else dataset("scenes_dev")


def iter_loaded(
    folder: str | os.PathLike | None = None, limit: int | None = None, min_faces: int = 0
) -> Iterator[Scene]:
    """Readable scenes in name order with at least ``min_faces`` annotated faces; unreadable images are
    skipped with a warning."""
    count = 0
    for scene in iter_scenes(scenes_folder(folder)):
        if limit is not None and count >= limit:
            return
        if len(scene.annotation.objects) < min_faces:
            continue
        try:
            image = read_image(scene.image_path)
        except ImageError as e:
            warnings.warn(f"skipping scene: {e}", stacklevel=2)
            continue
        count += 1
        yield Scene(scene.image_path.name, image, *truth(scene.annotation))
