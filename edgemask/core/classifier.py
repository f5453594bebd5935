"""Stage 2: the MobileNetV2 mask classifier, run on an exported model file."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from edgemask.core.backends import load_backend
from edgemask.core.ops.image import classifier_input

MAX_BATCH = 4
"""Crops classified per model run. The runtime's working memory grows by ~2 MB per crop of a batch (a
crowd of 31 faces took 64 MB), while per-face time hardly moves past 4 (int8 LiteRT, 1-2 threads:
1.8-2.4 ms a face at every batch size from 1 to 16)."""


class MaskClassifier:
    """Probabilities ``(N, 2)`` in ``labels`` order for N BGR face crops, classified in batches of up to
    :data:`MAX_BATCH`."""

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
        chunks = [faces_bgr[i : i + MAX_BATCH] for i in range(0, len(faces_bgr), MAX_BATCH)]
        probs = [self.backend.run(self.preprocess(chunk))[0].reshape(len(chunk), -1) for chunk in chunks]
        return probs[0] if len(probs) == 1 else np.concatenate(probs)
