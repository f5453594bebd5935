"""Training crops from annotated scenes, cut the way the runtime cuts them.

Each scene yields two kinds of crop: the shipped detector's own boxes (matched to the ground truth at
IoU ≥ 0.5, labelled from it, grown by the pipeline's margin and clamped by the runtime's crop rule), so
training sees deployment's jitter, margins and scale; and the annotated boxes themselves (margin 0, as
``edgemask-eval`` cuts them). Scenes come only through :func:`edgemask.evaluation.voc.load_scenes`, so
bad images, boxes and classes are skipped with a warning and counted. Detector boxes cost a detector
run per scene and are cached in a JSON file named by the detector file's digest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgemask.assets import file_digest
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.core.ops.image import classifier_input
from edgemask.evaluation.detection_metrics import TP, match_detections
from edgemask.evaluation.voc import Scene, load_scenes, skip_lines
from edgemask.labels import INCORRECT, LABELS
from edgemask.training.data import DataError, Faces

log = logging.getLogger(__name__)
MATCH_IOU = 0.5
INCORRECT_POLICIES = ("skip", *LABELS)
"""What a ``mask_weared_incorrect`` face becomes in training: left out, or one of the two labels."""


@dataclass(frozen=True)
class SceneDetections:
    """The detector's faces in one scene, in the scene's pixels; landmarks ``(K, 10)`` or empty."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def to_json(self) -> dict:
        return {
            "boxes": np.round(self.boxes, 2).tolist(),
            "scores": np.round(self.scores, 4).tolist(),
            "landmarks": np.round(self.landmarks, 2).tolist(),
        }

    @classmethod
    def from_json(cls, d: dict) -> SceneDetections:
        boxes = np.asarray(d["boxes"], np.float32).reshape(-1, 4)
        landmarks = np.asarray(d["landmarks"], np.float32)
        landmarks = landmarks.reshape(len(boxes), -1) if len(boxes) else np.zeros((0, 10), np.float32)
        return cls(boxes, np.asarray(d["scores"], np.float32).reshape(-1), landmarks)


def detections_cache(
    cache_dir: str | os.PathLike, scenes: str | os.PathLike, detector: str | os.PathLike
) -> Path:
    """Where the detector boxes of a scenes folder are kept: named by folder and detector digest."""
    return Path(cache_dir) / f"detections_{Path(scenes).name}_{file_digest(detector)[:16]}.json"


class DetectionCache:
    """Detector boxes per scene name, read from and written back to one JSON file (atomically)."""

    def __init__(self, path: Path, detector_path: str | os.PathLike) -> None:
        self.path = path
        self.detector_path = detector_path
        self.detector = None
        self.found: dict[str, SceneDetections] = {}
        self.dirty = False
        if path.is_file():
            try:
                self.found = {
                    k: SceneDetections.from_json(v) for k, v in json.loads(path.read_text()).items()
                }
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning("%s: unreadable detection cache (%s); detecting again", path, e)

    def get(self, scene: Scene) -> SceneDetections:
        if scene.name not in self.found:
            if self.detector is None:
                from edgemask.core.detectors import load_detector

                self.detector = load_detector(self.detector_path)
            found = self.detector.detect(scene.image)
            landmarks = found.landmarks if found.landmarks is not None else np.zeros((len(found), 0))
            self.found[scene.name] = SceneDetections(found.boxes, found.scores, landmarks)
            self.dirty = True
        return self.found[scene.name]

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part")
        tmp.write_text(json.dumps({k: v.to_json() for k, v in self.found.items()}))
        os.replace(tmp, self.path)
        self.dirty = False


def training_label(voc_class: str, incorrect: str) -> int | None:
    """Label index of an annotated face for training, None to leave it out."""
    if voc_class == INCORRECT:
        return None if incorrect == "skip" else LABELS.index(incorrect)
    return LABELS.index(voc_class) if voc_class in LABELS else None


def matched_truth(found: SceneDetections, scene: Scene) -> np.ndarray:
    """For each detection, the index of the ground-truth face it matches (VOC matching at IoU ≥ 0.5,
    best score first, each face taken once), -1 for none."""
    no_ignore = np.zeros(len(scene.boxes), bool)
    outcome, taken_by = match_detections(found.boxes, found.scores, scene.boxes, no_ignore, MATCH_IOU)
    return np.where(outcome == TP, taken_by, -1)


@dataclass
class SceneCrops:
    """Crops of a set of scenes: ``images`` at the input size, ``labels``, the face's ``widths`` in
    scene pixels, ``kinds`` (``detector`` / ``truth``) and the ``scenes`` they came from."""

    images: np.ndarray
    labels: np.ndarray
    widths: np.ndarray
    kinds: np.ndarray
    scenes: np.ndarray

    def faces(self) -> Faces:
        return Faces(self.images, self.labels)

    def take(self, index: np.ndarray) -> SceneCrops:
        return SceneCrops(
            self.images[index], self.labels[index], self.widths[index], self.kinds[index], self.scenes[index]
        )


def crops_of_scene(
    scene: Scene, found: SceneDetections | None, size: int, margin: float, incorrect: str
) -> list[tuple[np.ndarray, int, float, str]]:
    """``(crop, label, face width, kind)`` for one scene: matched detector boxes (grown by ``margin``) and
    every usable annotated box (margin 0)."""
    h, w = scene.image.shape[:2]
    # VOC "difficult" faces (IGNORE without being mask_weared_incorrect) are left out.
    labels = [
        None if d < 0 and c != INCORRECT else training_label(c, incorrect)
        for d, c in zip(scene.labels, scene.classes, strict=True)
    ]
    out = []
    if found is not None and len(found.boxes):
        truth = matched_truth(found, scene)
        hits = np.flatnonzero(truth >= 0)
        for i, box in zip(hits, face_crop_boxes(found.boxes[hits], margin, w, h), strict=True):
            label = labels[truth[i]]
            if label is not None:
                width = float(found.boxes[i, 2] - found.boxes[i, 0])
                out.append((classifier_input(crop(scene.image, box), size), label, width, "detector"))
    for i, box in enumerate(face_crop_boxes(scene.boxes, 0.0, w, h)):
        if labels[i] is not None:
            width = float(scene.boxes[i, 2] - scene.boxes[i, 0])
            out.append((classifier_input(crop(scene.image, box), size), labels[i], width, "truth"))
    return out


PATCH_SIDE = 32
"""Background patches for occluders are kept at this side (they are resized onto crops anyway)."""


def background_patches(
    scene: Scene, count: int, rng: np.random.Generator, side: int = PATCH_SIDE
) -> list[np.ndarray]:
    """Up to ``count`` RGB squares of the scene that touch no annotated face (grown by half its size):
    real things that are not masks (hands, phones, paper, clothes, hair) to cover mouths with."""
    h, w = scene.image.shape[:2]
    faces = scene.boxes
    typical = float(np.median(faces[:, 2] - faces[:, 0])) if len(faces) else 0.15 * min(h, w)
    grown = np.concatenate(
        [
            faces[:, :2] - 0.5 * (faces[:, 2:] - faces[:, :2]),
            faces[:, 2:] + 0.5 * (faces[:, 2:] - faces[:, :2]),
        ],
        axis=1,
    )
    out = []
    for _ in range(4 * count):
        if len(out) >= count:
            break
        p = int(np.clip(typical * rng.uniform(0.6, 2.0), 6, min(h, w)))
        x, y = int(rng.integers(0, w - p + 1)), int(rng.integers(0, h - p + 1))
        hit = (grown[:, 0] < x + p) & (grown[:, 2] > x) & (grown[:, 1] < y + p) & (grown[:, 3] > y)
        if not hit.any():
            out.append(classifier_input(scene.image[y : y + p, x : x + p], side))
    return out


def load_scene_crops(
    folder: str | os.PathLike,
    size: int,
    detector: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    margin: float,
    incorrect: str = "skip",
    patches_per_scene: int = 0,
    seed: int = 0,
) -> tuple[SceneCrops, np.ndarray]:
    """Every training crop of a VOC scenes folder (see the module docstring) and ``patches_per_scene``
    background patches of each scene (``(M, 32, 32, 3)`` RGB); ``detector`` None gives ground-truth
    crops only. Raises DataError when the folder yields no crop at all."""
    if incorrect not in INCORRECT_POLICIES:
        raise ValueError(
            f"unknown mask_weared_incorrect policy {incorrect!r}; choose from {INCORRECT_POLICIES}"
        )
    cache = DetectionCache(detections_cache(cache_dir, folder, detector), detector) if detector else None
    rows: list[tuple[np.ndarray, int, float, str]] = []
    names: list[str] = []
    patches: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    scenes = load_scenes(folder)
    try:
        for scene in tqdm(scenes, desc=f"cropping {Path(folder).name}", unit="scene", mininterval=5.0):
            found = cache.get(scene) if cache else None
            got = crops_of_scene(scene, found, size, margin, incorrect)
            rows += got
            names += [scene.name] * len(got)
            patches += background_patches(scene, patches_per_scene, rng)
    finally:
        if cache:
            cache.save()
    for line in skip_lines(scenes.skipped):
        log.warning("%s: %s", folder, line)
    if not rows:
        raise DataError(f"{folder}: no usable annotated faces")
    images, labels, widths, kinds = zip(*rows, strict=True)
    crops = SceneCrops(
        np.stack(images),
        np.asarray(labels, np.int64),
        np.asarray(widths, np.float32),
        np.asarray(kinds),
        np.asarray(names),
    )
    bank = np.stack(patches) if patches else np.zeros((0, PATCH_SIDE, PATCH_SIDE, 3), np.uint8)
    return crops, bank


def split_by_scene(crops: SceneCrops, fraction: float, seed: int) -> tuple[SceneCrops, SceneCrops]:
    """(train, validation): a seeded ``fraction`` of the scenes, all their crops together, validates, so
    no face is in both (a detector crop and its ground-truth crop are near copies)."""
    names = np.unique(crops.scenes)
    held = np.random.default_rng(seed).permutation(names)[: max(1, round(fraction * len(names)))]
    is_val = np.isin(crops.scenes, held)
    return crops.take(np.flatnonzero(~is_val)), crops.take(np.flatnonzero(is_val))


def summary(crops: SceneCrops) -> dict:
    """Counts per label and crop kind, for the metrics JSON and the model card."""
    out: dict = {"scenes": len(np.unique(crops.scenes))}
    for kind in ("detector", "truth"):
        mine = crops.labels[crops.kinds == kind]
        out[kind] = {name: int((mine == i).sum()) for i, name in enumerate(LABELS)}
    out["under_16_px"] = int((crops.widths < 16).sum())
    return out


def concat(parts: Sequence[SceneCrops]) -> SceneCrops:
    return SceneCrops(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in SceneCrops.__dataclass_fields__)
    )


def scene_sets(
    folders: Sequence[str | os.PathLike],
    size: int,
    detector: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    margin: float,
    incorrect: str,
    patches_per_scene: int,
    seed: int,
    val_fraction: float,
) -> tuple[SceneCrops, SceneCrops, np.ndarray, dict]:
    """Training and validation scene crops (split by scene), the occluder patch bank, and a summary."""
    parts, banks = [], []
    for folder in folders:
        crops, bank = load_scene_crops(
            folder, size, detector, cache_dir, margin, incorrect, patches_per_scene, seed
        )
        parts.append(crops)
        banks.append(bank)
    train, val = split_by_scene(concat(parts), val_fraction, seed)
    info = {
        "folders": [str(f) for f in folders],
        "detector": Path(detector).name if detector else None,
        "margin": margin,
        "incorrect": incorrect,
        "train": summary(train),
        "val": summary(val),
        "occluder_patches": int(sum(len(b) for b in banks)),
    }
    return train, val, np.concatenate(banks), info
