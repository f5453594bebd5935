"""What the gate compares exported files against, computed once per run.

- Detector: OpenCV 4's own Caffe importer (``cv2.dnn.readNetFromCaffe``) on real scenes, fed the same
  ``cv2.resize`` (bilinear) image the runtime feeds; plus the scenes' ground-truth faces.
- Classifier: the Keras model on real face crops (a labelled test folder and ground-truth scene crops),
  prepared by the runtime's own ``classifier_input``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgemask import LABELS
from edgemask.imageio import ImageError, list_images, read_image
from edgemask.preprocess import classifier_input
from edgemask.voc import iter_face_crops, iter_scenes
from export.sources import CAFFE_MEAN, ExportSource

log = logging.getLogger("edgemask.export")
OTHER = -1
"""Label of crops outside ``LABELS`` (``mask_weared_incorrect``): counted for agreement, not accuracy."""


@dataclass(frozen=True)
class Scene:
    name: str
    image: np.ndarray
    faces: np.ndarray  # (K, 4) ground-truth boxes, pixels


def load_scenes(folder: str | os.PathLike, limit: int | None = None) -> list[Scene]:
    """VOC scenes with their annotated faces (every class counts as a face)."""
    scenes = []
    for scene in iter_scenes(folder):
        if limit is not None and len(scenes) >= limit:
            break
        try:
            image = read_image(scene.image_path)
        except ImageError as e:
            log.warning("gate: skipping scene %s", e)
            continue
        boxes = np.array([o.box for o in scene.annotation.objects], np.float32).reshape(-1, 4)
        scenes.append(Scene(scene.image_path.name, image, boxes))
    if not scenes:
        raise FileNotFoundError(f"{folder}: no readable annotated scenes for the detector gate")
    return scenes


@dataclass
class OpenCVReference:
    """OpenCV's ``detection_out`` per scene and input size, as ``(K, 5)`` pixel boxes + scores."""

    prototxt: Path
    caffemodel: Path
    scenes: list[Scene]
    threshold: float
    cache: dict[tuple[int, int], list[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cv2.setNumThreads(1)
        self.net = cv2.dnn.readNetFromCaffe(str(self.prototxt), str(self.caffemodel))

    def forward(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        self.net.setInput(cv2.dnn.blobFromImage(resized, 1.0, (w, h), CAFFE_MEAN))
        return self.net.forward("detection_out")

    def detections(self, size: tuple[int, int]) -> list[np.ndarray]:
        if size not in self.cache:
            out = []
            for scene in tqdm(self.scenes, desc=f"OpenCV reference {size[1]}x{size[0]}", leave=False):
                rows = self.forward(scene.image, size)[0, 0]
                rows = rows[rows[:, 2] >= self.threshold]
                ih, iw = scene.image.shape[:2]
                boxes = rows[:, 3:7] * np.array([iw, ih, iw, ih], np.float32)
                out.append(np.concatenate([boxes, rows[:, 2:3]], axis=1).astype(np.float32))
            self.cache[size] = out
        return self.cache[size]

    def ms_per_inference(self, size: tuple[int, int], runs: int) -> float:
        image = self.scenes[0].image
        self.forward(image, size)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            self.forward(image, size)
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e3)


@dataclass(frozen=True)
class CropSet:
    """Face crops ready for the classifier (RGB uint8, model size) and their labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray  # index into LABELS, or OTHER


def folder_crops(folder: str | os.PathLike, size: int, limit: int | None = None) -> CropSet:
    """``folder/with_mask`` and ``folder/without_mask`` crops (up to ``limit`` per class)."""
    folder = Path(folder)
    images, labels = [], []
    for label, name in enumerate(LABELS):
        for path in list_images(folder / name)[:limit]:
            try:
                images.append(classifier_input(read_image(path), size))
                labels.append(label)
            except ImageError as e:
                log.warning("gate: skipping %s", e)
    if not images:
        raise FileNotFoundError(f"{folder}: no with_mask/without_mask crops for the classifier gate")
    return CropSet(folder.name, np.stack(images), np.array(labels))


def scene_crops(folder: str | os.PathLike, size: int, limit: int | None = None) -> CropSet:
    """Ground-truth faces of VOC scenes (margin 0, as ``edgemask-eval`` does), all classes."""
    images, labels = [], []
    for face in iter_face_crops(folder, margin=0.0):
        if limit is not None and len(images) >= limit:
            break
        images.append(classifier_input(face.image, size))
        labels.append(LABELS.index(face.name) if face.name in LABELS else OTHER)
    if not images:
        raise FileNotFoundError(f"{folder}: no annotated faces for the classifier gate")
    return CropSet(f"{Path(folder).name} crops", np.stack(images), np.array(labels))


@dataclass
class KerasReference:
    """The Keras classifier's probabilities on every crop set."""

    source: ExportSource
    sets: list[CropSet]
    probs: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        for crop_set in self.sets:
            batches = [
                self.source.keras_outputs(crop_set.images[i : i + 64])[0]
                for i in range(0, len(crop_set.images), 64)
            ]
            self.probs.append(np.concatenate(batches))
