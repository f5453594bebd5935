"""Stage 2: the MobileNetV2 mask classifier, run on an exported model file."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from edgemask.core.backends import load_backend
from edgemask.core.ops.image import classifier_input


class MaskClassifier:
    """Probabilities ``(N, 2)`` in ``labels`` order for N BGR face crops, classified as one batch."""

    def __init__(self, model_path: str | os.PathLike, threads: int = 1) -> None:
        self.backend = load_backend(model_path, threads)
        meta = self.backend.meta
        if meta.task != "classify" or len(meta.labels) != 2:
            raise ValueError(f"{model_path}: not a 2-class mask classifier (task {meta.task!r})")
        self.labels = meta.labels
        self.input_size = int(meta.input_size[0])

    def preprocess(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([classifier_input(face, self.input_size) for face in faces_bgr])
        return batch[..., ::-1] if self.backend.meta.channel_order == "BGR" else batch

    def infer(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        if len(faces_bgr) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.backend.run(self.preprocess(faces_bgr))[0].reshape(len(faces_bgr), -1)
