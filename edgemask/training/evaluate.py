"""Evaluate any classifier file on labelled crop folders or on ground-truth crops of VOC scenes.

Model files: ``.keras`` (this project's Keras model; pixels via ``classifier_input``), ``.tflite`` /
``.onnx`` (exported, through the runtime's :class:`edgemask.core.classifier.MaskClassifier`), and ``.h5`` /
``.model`` (legacy Keras-2 HDF5 such as the PyImageSearch peer: read with ``tf_keras``, pixels scaled to
[-1, 1] outside the model, as that recipe does).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgemask.core.imageio import ImageError, read_image
from edgemask.core.ops.image import classifier_input
from edgemask.evaluation.metrics import classification_metrics
from edgemask.evaluation.voc import iter_face_crops
from edgemask.labels import LABELS
from edgemask.training.data import class_files

log = logging.getLogger(__name__)
INCORRECT = "mask_weared_incorrect"


class KerasClassifier:
    """A ``.keras`` classifier with the runtime's ``infer(faces_bgr) -> (N, 2)`` interface."""

    def __init__(self, model_or_path) -> None:
        if isinstance(model_or_path, str | os.PathLike):
            from edgemask.training.classifier.model import load_keras_model

            model_or_path = load_keras_model(model_or_path)
        self.model = model_or_path
        self.input_size = int(self.model.input_shape[1])
        self.labels = LABELS

    def preprocess(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([classifier_input(f, self.input_size) for f in faces_bgr]).astype(np.float32)

    def infer(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        if len(faces_bgr) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.asarray(self.model(self.preprocess(faces_bgr), training=False), dtype=np.float32)


class LegacyKerasClassifier(KerasClassifier):
    """A Keras-2 HDF5 classifier taking RGB scaled to [-1, 1] (the PyImageSearch recipe)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import tf_keras

        from edgemask.training.classifier.model import KerasFileError

        try:
            model = tf_keras.models.load_model(path, compile=False)
        except Exception as e:  # h5py and Keras raise many types for a bad file
            raise KerasFileError(f"{path}: not a loadable Keras model ({type(e).__name__})") from e
        super().__init__(model)

    def preprocess(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        return super().preprocess(faces_bgr) / 127.5 - 1.0


def load_classifier(path: str | os.PathLike):
    """An object with ``infer(faces_bgr)``, ``input_size`` and ``labels`` for any supported model file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return KerasClassifier(path)
    if suffix in (".h5", ".model"):
        return LegacyKerasClassifier(path)
    if suffix in (".tflite", ".onnx"):
        from edgemask.core.classifier import MaskClassifier

        return MaskClassifier(path)
    raise ValueError(f"{path}: unsupported model type {suffix!r} (use .keras, .tflite, .onnx, .h5)")


@dataclass
class Predictions:
    """Per-sample ground truth (a class name) and predicted probabilities in LABELS order."""

    names: list[str] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0

    def predicted(self) -> np.ndarray:
        return np.argmax(np.stack(self.probs), axis=1) if self.probs else np.zeros(0, dtype=np.int64)


def predict(
    classifier,
    samples: Iterable[tuple[np.ndarray | None, str]],
    batch_size: int = 64,
    desc: str = "classifying",
    total: int | None = None,
) -> Predictions:
    """Run ``classifier`` over ``(face_bgr, true_name)`` pairs in batches; None faces count as skipped."""
    out = Predictions()
    faces: list[np.ndarray] = []
    names: list[str] = []

    def flush() -> None:
        if faces:
            out.probs.extend(classifier.infer(faces))
            out.names.extend(names)
            faces.clear()
            names.clear()

    for face, name in tqdm(samples, desc=desc, unit="face", total=total, mininterval=2.0, leave=False):
        if face is None:
            out.skipped += 1
            continue
        faces.append(face)
        names.append(name)
        if len(faces) >= batch_size:
            flush()
    flush()
    return out


def folder_samples(folder: str | os.PathLike) -> tuple[Iterator[tuple[np.ndarray | None, str]], int]:
    """(face, class name) for the images of ``folder/with_mask`` and ``folder/without_mask``."""
    files = class_files(folder)

    def gen() -> Iterator[tuple[np.ndarray | None, str]]:
        for path, label in zip(files.paths, files.labels, strict=True):
            try:
                yield read_image(path), LABELS[label]
            except ImageError as e:
                log.warning("skipping %s", e)
                yield None, LABELS[label]

    return gen(), len(files)


def voc_samples(folder: str | os.PathLike, margin: float = 0.0) -> Iterator[tuple[np.ndarray, str]]:
    """(ground-truth face crop, class name) for every annotated face of a VOC scenes folder."""
    for face in iter_face_crops(folder, margin=margin):
        yield face.image, face.name


def summarize(preds: Predictions) -> dict:
    """Metrics over with_mask/without_mask samples; other classes (mask_weared_incorrect) counted apart."""
    names = np.array(preds.names)
    predicted = preds.predicted()
    known = np.isin(names, LABELS)
    y_true = np.array([LABELS.index(n) for n in names[known]], dtype=np.int64)
    result = classification_metrics(y_true, predicted[known])
    result["skipped"] = preds.skipped
    others = {}
    for name in sorted(set(names[~known])):
        got = Counter(LABELS[i] for i in predicted[names == name])
        others[name] = {"n": int((names == name).sum()), "predicted": {k: got.get(k, 0) for k in LABELS}}
    if others:
        result["other_classes"] = others
    return result


def evaluate_folder(classifier, folder: str | os.PathLike, batch_size: int = 64) -> dict:
    samples, total = folder_samples(folder)
    return summarize(predict(classifier, samples, batch_size, desc=f"eval {Path(folder).name}", total=total))


def evaluate_voc(classifier, folder: str | os.PathLike, margin: float = 0.0, batch_size: int = 64) -> dict:
    preds = predict(
        classifier, voc_samples(folder, margin), batch_size, desc=f"eval {Path(folder).name} crops"
    )
    result = summarize(preds)
    result["margin"] = margin
    return result
