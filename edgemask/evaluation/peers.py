"""The systems edgemask is measured against, run the way their authors run them.

- The classic recipe (the seed, PyImageSearch's ``detect_mask_image.py``): OpenCV 4's ``cv2.dnn`` on the
  Caffe res10 detector with a 300×300 ``blobFromImage``, faces above confidence 0.5, and the Keras
  MobileNetV2 classifier on each crop (BGR→RGB, 224×224 bilinear, ``x / 127.5 - 1``).
- AIZOOTech's one-stage face-mask SSD (TFLite, through LiteRT): 260×260 RGB ``/ 255``, its own anchors,
  centre-size decoding, one NMS over both classes at IoU 0.4, confidence 0.5.

Both answer a :class:`FrameResult`, like the edgemask pipeline.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from edgemask.core.ops.boxes import nms
from edgemask.core.ops.ssd import decode_boxes
from edgemask.evaluation.frame_result import FrameResult

CAFFE_MEAN = (104.0, 177.0, 123.0)
CLASSIC_BLOB = 300
CLASSIC_CONFIDENCE = 0.5
PYIMAGESEARCH_SIZE = 224
CLASSIFIER_CALLS = ("predict", "call", "batch")
"""How the classic recipe calls Keras: ``model.predict`` per face (the seed), ``model(x)`` per face, or
``model(x)`` once on all faces of the frame (same numbers, used for accuracy runs)."""

AIZOO_INPUT = 260
AIZOO_FEATURE_MAPS = (33, 17, 9, 5, 3)
AIZOO_ANCHOR_SIZES = ((0.04, 0.056), (0.08, 0.11), (0.16, 0.22), (0.32, 0.45), (0.64, 0.72))
AIZOO_ANCHOR_RATIOS = (1.0, 0.62, 0.42)
AIZOO_VARIANCES = (0.1, 0.1, 0.2, 0.2)
AIZOO_NMS = 0.4
AIZOO_CONFIDENCE = 0.5


def load_pyimagesearch(path: str | os.PathLike, threads: int):
    """The Keras-2 HDF5 peer through ``tf_keras`` (Keras 3 cannot read it), TensorFlow held to ``threads``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        warnings.warn("TensorFlow was already running; its thread count is unchanged", stacklevel=2)
    return tf_keras.models.load_model(str(path), compile=False)


def pyimagesearch_input(face_bgr: np.ndarray) -> np.ndarray:
    """The seed's preprocessing of one crop: RGB, 224×224 (``cv2.resize`` default), scaled to [-1, 1]."""
    rgb = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (PYIMAGESEARCH_SIZE, PYIMAGESEARCH_SIZE)).astype(np.float32)
    return rgb / 127.5 - 1.0


class ClassicRecipe:
    """The seed's two stages; ``empty_crops`` counts detections whose crop had no pixels (the seed would
    crash on them; here they are dropped)."""

    def __init__(
        self,
        prototxt: str | os.PathLike,
        caffemodel: str | os.PathLike,
        classifier: str | os.PathLike,
        threads: int = 1,
        call: str = "predict",
        confidence: float = CLASSIC_CONFIDENCE,
    ) -> None:
        if call not in CLASSIFIER_CALLS:
            raise ValueError(f"call must be one of {CLASSIFIER_CALLS}, got {call!r}")
        self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        self.model = load_pyimagesearch(classifier, threads)
        self.call = call
        self.confidence = confidence
        self.empty_crops = 0

    def detect(self, image: np.ndarray) -> np.ndarray:
        """``(K, 5)`` integer-pixel boxes (clamped as the seed does) and confidences."""
        h, w = image.shape[:2]
        blob = cv2.dnn.blobFromImage(image, 1.0, (CLASSIC_BLOB, CLASSIC_BLOB), CAFFE_MEAN)
        self.net.setInput(blob)
        rows = self.net.forward()[0, 0]
        rows = rows[rows[:, 2] > self.confidence]
        boxes = (rows[:, 3:7] * np.array([w, h, w, h])).astype(int)
        boxes[:, :2] = np.maximum(boxes[:, :2], 0)
        boxes[:, 2:] = np.minimum(boxes[:, 2:], [w - 1, h - 1])
        return np.concatenate([boxes, rows[:, 2:3]], axis=1)

    def classify(self, faces: list[np.ndarray]) -> np.ndarray:
        """``(N, 2)`` probabilities ``[p_mask, p_without_mask]``."""
        if not faces:
            return np.zeros((0, 2), dtype=np.float32)
        batch = [pyimagesearch_input(f)[None] for f in faces]
        if self.call == "predict":
            return np.concatenate([self.model.predict(x, verbose=0) for x in batch])
        if self.call == "call":
            return np.concatenate([np.asarray(self.model(x, training=False)) for x in batch])
        return np.asarray(self.model(np.concatenate(batch), training=False))

    def infer(self, image: np.ndarray) -> FrameResult:
        dets = self.detect(image)
        faces, kept = [], []
        for i, (x1, y1, x2, y2) in enumerate(dets[:, :4].astype(int)):
            if x2 <= x1 or y2 <= y1:
                self.empty_crops += 1
                continue
            faces.append(image[y1:y2, x1:x2])
            kept.append(i)
        return FrameResult.from_probs(dets[kept, :4], self.classify(faces), dets[kept, 4])


def aizoo_anchors(
    feature_maps: tuple[int, ...] = AIZOO_FEATURE_MAPS,
    sizes: tuple[tuple[float, ...], ...] = AIZOO_ANCHOR_SIZES,
    ratios: tuple[float, ...] = AIZOO_ANCHOR_RATIOS,
) -> np.ndarray:
    """``(N, 4)`` normalized corner anchors in the model's output order.

    Per map, cells row by row; per cell every size at the first ratio, then the first size at the other
    ratios (width ``s·√r``, height ``s/√r``): 4 anchors a cell, 5972 for the 260-px input.
    """
    parts = []
    for n, scales in zip(feature_maps, sizes, strict=True):
        shapes = [(s, ratios[0]) for s in scales] + [(scales[0], r) for r in ratios[1:]]
        half = np.array([[s * np.sqrt(r) / 2, s / np.sqrt(r) / 2] for s, r in shapes])
        cy, cx = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centers = np.stack([cx.ravel(), cy.ravel()], axis=-1)[:, None, :]
        parts.append(np.concatenate([centers - half, centers + half], axis=-1).reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def aizoo_detections(
    loc: np.ndarray, scores: np.ndarray, anchors: np.ndarray, confidence: float = AIZOO_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized boxes, class indices and class scores kept by AIZOO's post-processing: decode, best
    class per anchor, one NMS over all classes at IoU 0.4 for scores above ``confidence``."""
    boxes = decode_boxes(loc.reshape(-1, 4), anchors, AIZOO_VARIANCES)
    scores = scores.reshape(len(anchors), -1)
    best, classes = scores.max(axis=1), scores.argmax(axis=1)
    keep = nms(boxes, best, AIZOO_NMS, confidence)
    return boxes[keep], classes[keep], best[keep]


class AizooDetector:
    """AIZOOTech's TFLite model on LiteRT. Its class score is both face and class confidence, so it is
    reported as the face score with class probability 1."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, confidence: float = AIZOO_CONFIDENCE):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self.anchors = aizoo_anchors()
        self.confidence = confidence

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(loc, scores)`` for a BGR image, told apart by their last dimension (4 vs 2)."""
        rgb = cv2.cvtColor(cv2.resize(image, (AIZOO_INPUT, AIZOO_INPUT)), cv2.COLOR_BGR2RGB)
        self.interpreter.set_tensor(self.input_index, (rgb / 255.0).astype(np.float32)[None])
        self.interpreter.invoke()
        a, b = (self.interpreter.get_tensor(i)[0] for i in self.outputs)
        return (a, b) if a.shape[-1] == 4 else (b, a)

    def infer(self, image: np.ndarray) -> FrameResult:
        h, w = image.shape[:2]
        boxes, classes, scores = aizoo_detections(*self.raw(image), self.anchors, self.confidence)
        pixels = np.clip(boxes, 0.0, 1.0) * np.array([w, h, w, h])
        return FrameResult.build(pixels.astype(int), classes, np.ones(len(classes)), scores)
