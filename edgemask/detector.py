"""Stage 1: the res10 SSD face detector, run on an exported model file."""

from __future__ import annotations

import os

import cv2
import numpy as np

from edgemask.backends import load_backend
from edgemask.ssd import detection_output, prior_boxes

DEFAULT_INPUT_SIZE = (300, 300)


class FaceDetector:
    """Faces in a BGR image as ``(K, 5)`` rows ``[x1, y1, x2, y2, score]`` in the image's pixels.

    ``input_size`` is the ``(height, width)`` the image is resized to; an int means a square. Larger sizes
    find smaller faces at a higher cost. Files exported at a fixed size run only at that size.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        conf_threshold: float | None = None,
        nms_threshold: float | None = None,
        input_size: int | tuple[int, int] | None = None,
        threads: int = 1,
    ) -> None:
        self.backend = load_backend(model_path, threads)
        meta = self.backend.meta
        if meta.task != "detect" or meta.ssd is None:
            raise ValueError(f"{model_path}: not a face detector (task {meta.task!r})")
        self.ssd = meta.ssd
        self.conf_threshold = conf_threshold if conf_threshold is not None else meta.thresholds["confidence"]
        if nms_threshold is not None:
            self.ssd = type(self.ssd)(**{**self.ssd.__dict__, "nms_threshold": nms_threshold})
        self.input_size = self._choose_size(input_size, meta.input_size)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _choose_size(
        requested: int | tuple[int, int] | None, fixed: tuple[int | None, int | None]
    ) -> tuple[int, int]:
        if isinstance(requested, int):
            requested = (requested, requested)
        if None not in fixed:
            if requested is not None and tuple(requested) != tuple(fixed):
                size = f"{fixed[1]}x{fixed[0]}"
                raise ValueError(f"this model file only runs at {size}; export one at {requested}")
            return (int(fixed[0]), int(fixed[1]))
        return tuple(requested) if requested is not None else DEFAULT_INPUT_SIZE

    def priors(self, size: tuple[int, int]) -> np.ndarray:
        if size not in self._priors:
            self._priors[size] = prior_boxes(self.ssd, size)
        return self._priors[size]

    def infer(self, image: np.ndarray) -> np.ndarray:
        h, w = self.input_size
        blob = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.backend.meta.channel_order == "RGB":
            blob = cv2.cvtColor(blob, cv2.COLOR_BGR2RGB)
        outputs = self.backend.run(blob[None])
        loc, conf = split_outputs(outputs)
        dets = detection_output(loc, conf, self.priors((h, w)), self.ssd, self.conf_threshold)
        dets[:, :4] *= np.array([image.shape[1], image.shape[0]] * 2, dtype=np.float32)
        return dets


def split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(loc, conf)`` as ``(N, 4)`` and ``(N, C)``, whatever order the runtime lists outputs in."""
    if len(outputs) != 2:
        raise ValueError(f"a detector has 2 outputs (loc, conf), got {len(outputs)}")
    a, b = (o.reshape(o.shape[-2], o.shape[-1]) for o in outputs)
    return (a, b) if a.shape[-1] == 4 else (b, a)
