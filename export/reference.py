"""What the gate compares exported files against, computed once per run.

- res10: OpenCV 4's own Caffe importer (``cv2.dnn.readNetFromCaffe``) with its ``DetectionOutput``.
- YuNet: the source ONNX file run by ONNX Runtime, decoded by the runtime's decoder (the decoder itself
  is checked against hand-computed cells and OpenCV's ``FaceDetectorYN`` in the tests).
- Classifier: the Keras model on real face crops (a labelled test folder and ground-truth scene crops),
  prepared by the runtime's own ``classifier_input``; the exported file gets the same crops through
  ``MaskClassifier``.

Detector references are fed the very network inputs (:class:`~edgemask.core.detectors.Pass`) that the
runtime builds for a frame at its default operating point, so the gate checks what deployment runs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgemask.core.detectors import Detections, Pass
from edgemask.core.imageio import ImageError, list_images, read_image
from edgemask.core.metadata import GridConfig
from edgemask.core.ops.image import classifier_input, resize
from edgemask.core.ops.yunet import decode, select
from edgemask.evaluation.voc import iter_face_crops
from edgemask.export.sources import CAFFE_MEAN, ExportSource
from edgemask.labels import IGNORE, LABELS

log = logging.getLogger("edgemask.export")


class DetectorReference(Protocol):
    """Runs a source detector on a runtime pass; ``threshold`` is the lowest face score it keeps."""

    name: str
    threshold: float

    def run_pass(self, p: Pass) -> Detections: ...


@dataclass
class OpenCVReference:
    """res10 through OpenCV's Caffe importer and its own ``detection_out`` (boxes in frame pixels)."""

    prototxt: Path
    caffemodel: Path
    threshold: float
    name: str = "OpenCV Caffe (reference)"

    def __post_init__(self) -> None:
        cv2.setNumThreads(1)
        self.net = cv2.dnn.readNetFromCaffe(str(self.prototxt), str(self.caffemodel))

    def run_pass(self, p: Pass) -> Detections:
        h, w = p.size
        self.net.setInput(cv2.dnn.blobFromImage(p.blob[0], 1.0, (w, h), CAFFE_MEAN))
        rows = self.net.forward("detection_out")[0, 0]
        rows = rows[rows[:, 2] >= self.threshold]
        fh, fw = p.frame_hw
        boxes = rows[:, 3:7] * np.array([fw, fh, fw, fh], np.float32)
        return Detections(boxes.astype(np.float32), rows[:, 2].astype(np.float32))


@dataclass
class YuNetSourceReference:
    """The source YuNet ONNX (NCHW float BGR) in ONNX Runtime, decoded like the runtime decodes."""

    path: Path
    threshold: float
    nms_threshold: float
    grid: GridConfig = field(default_factory=GridConfig)
    name: str = "YuNet source ONNX (reference)"

    def __post_init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def outputs(self, blob_bgr: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(blob_bgr.transpose(0, 3, 1, 2), dtype=np.float32)
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: x}), strict=True))

    def run_pass(self, p: Pass) -> Detections:
        return decoded_pass(self.outputs(p.blob), p, self.threshold, self.nms_threshold, self.grid)


@dataclass
class YuNetKerasReference:
    """A fine-tuned YuNet's own Keras model (NHWC float BGR), decoded like the runtime decodes."""

    source: ExportSource
    threshold: float
    nms_threshold: float
    name: str = "YuNet fine-tuned Keras (reference)"

    def run_pass(self, p: Pass) -> Detections:
        outputs = dict(zip(self.source.output_names, self.source.keras_outputs(p.blob), strict=True))
        grid = self.source.meta.grid or GridConfig()
        return decoded_pass(outputs, p, self.threshold, self.nms_threshold, grid)


def decoded_pass(
    outputs: dict[str, np.ndarray], p: Pass, threshold: float, nms_threshold: float, grid: GridConfig
) -> Detections:
    """YuNet heads of one pass -> the faces the runtime keeps, in frame pixels."""
    boxes, scores, landmarks = decode(outputs, p.size, grid)
    keep = select(boxes, scores, threshold, nms_threshold, grid)
    found = Detections(boxes[keep], scores[keep], landmarks[keep])
    return found.scaled(p.frame_hw[1] / p.resized_hw[1], p.frame_hw[0] / p.resized_hw[0])


def median_ms(run, *args: object, runs: int = 20) -> float:
    """Median milliseconds of ``run(*args)`` after one warm-up call."""
    run(*args)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


@dataclass(frozen=True)
class CropSet:
    """Face crops as the runtime hands them to the classifier (BGR uint8, already at the model's size,
    so every file sees the same pixels however it resizes) and their labels."""

    name: str
    faces: np.ndarray
    labels: np.ndarray  # index into LABELS, or IGNORE

    def model_inputs(self) -> np.ndarray:
        """The crops as the Keras model takes them: RGB, through the runtime's ``classifier_input``."""
        return np.stack([classifier_input(face, face.shape[0]) for face in self.faces])


def folder_crops(folder: str | os.PathLike, size: int, limit: int | None = None) -> CropSet:
    """``folder/with_mask`` and ``folder/without_mask`` crops (up to ``limit`` per class)."""
    folder = Path(folder)
    images, labels = [], []
    for label, name in enumerate(LABELS):
        for path in list_images(folder / name)[:limit]:
            try:
                images.append(resize(read_image(path), (size, size)))
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
        images.append(resize(face.image, (size, size)))
        labels.append(LABELS.index(face.name) if face.name in LABELS else IGNORE)
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
            images = crop_set.model_inputs()
            batches = [self.source.keras_outputs(images[i : i + 64])[0] for i in range(0, len(images), 64)]
            self.probs.append(np.concatenate(batches))
