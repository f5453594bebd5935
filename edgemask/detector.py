"""Stage 1: the res10 SSD face detector, run on an exported model file, at one or two scales."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgemask.backends import load_backend
from edgemask.ssd import detection_output, nms, prior_boxes

DEFAULT_INPUT_SIZE = 300
"""The squashed pass alone runs at res10's training size."""
PAIRED_INPUT_SIZE = 224
"""The squashed pass beside a small-face pass, which already finds every face under 128 network px: on
both halves of scenes_dev 224 px gives the mAP of 300 px there (benchmarks/accuracy.py --sweep) at about
half that pass's cost."""
DEFAULT_SMALL_FACE_SIZE = 512
"""The sweep's best mAP that keeps FAR <= 2 % and FRR <= 3 % on found faces on both halves of scenes_dev
(640 and 800 px find more tiny faces and score higher mAP, but push FAR over 2 %)."""
SMALL_FACE_MAX_PX = 128
"""In an enlarged pass only boxes narrower than this (in network pixels) are kept: res10's last heads have
fixed prior steps (100, 300 px) that only tile a 300-px input, so at larger sizes they invent big faces."""
SIZE_STEP = 32
MERGE_IOU = 0.3
"""Boxes of the two passes overlapping more than this are the same face."""


@dataclass(frozen=True)
class ScalePass:
    """One detector run: ``size`` is the square side (or an exact ``(height, width)``), or the longest side
    with ``keep_aspect``."""

    size: int | tuple[int, int]
    keep_aspect: bool
    max_face_px: float | None = None

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """Sides rounded to multiples of :data:`SIZE_STEP` with ``keep_aspect``, so that a folder of mixed
        images needs only a few input shapes (each new shape costs the runtime a new plan of the graph)."""
        if isinstance(self.size, tuple):
            return self.size
        if not self.keep_aspect:
            return (self.size, self.size)
        s = self.size / max(height, width)
        return (_round_side(height * s), _round_side(width * s))


def _round_side(side: float) -> int:
    return max(SIZE_STEP, round(side / SIZE_STEP) * SIZE_STEP)


def scale_passes(input_size: int | None, small_face_size: int | None) -> tuple[ScalePass, ...]:
    """The classic squashed pass, plus an enlarged keep-aspect pass for small faces when asked.
    ``input_size`` None picks :data:`PAIRED_INPUT_SIZE` beside a small-face pass, else 300."""
    paired = bool(small_face_size) and small_face_size > (input_size or PAIRED_INPUT_SIZE)
    size = input_size or (PAIRED_INPUT_SIZE if paired else DEFAULT_INPUT_SIZE)
    passes = [ScalePass(size, keep_aspect=False)]
    if paired:
        passes.append(ScalePass(small_face_size, keep_aspect=True, max_face_px=SMALL_FACE_MAX_PX))
    return tuple(passes)


class FaceDetector:
    """Faces in a BGR image as ``(K, 5)`` rows ``[x1, y1, x2, y2, score]`` in the image's pixels.

    The image is squashed to ``input_size``² as in OpenCV's sample; ``small_face_size`` adds a second pass
    with the longest side enlarged to that many pixels, which finds faces under ~30 px that a 300-px pass
    misses (measured in benchmarks/accuracy.py). ``None`` turns it off. A model file exported at a fixed
    size runs one pass at that size.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        conf_threshold: float | None = None,
        nms_threshold: float | None = None,
        input_size: int | None = None,
        small_face_size: int | None = DEFAULT_SMALL_FACE_SIZE,
        threads: int = 1,
    ) -> None:
        self.backend = load_backend(model_path, threads)
        meta = self.backend.meta
        if meta.task != "detect" or meta.ssd is None:
            raise ValueError(f"{model_path}: not a face detector (task {meta.task!r})")
        self.ssd = meta.ssd
        self.conf_threshold = conf_threshold if conf_threshold is not None else meta.thresholds["confidence"]
        if nms_threshold is not None:
            self.ssd = replace(self.ssd, nms_threshold=nms_threshold)
        fixed = meta.input_size
        if None in fixed:
            self.passes = scale_passes(input_size, small_face_size)
        else:
            self.passes = (ScalePass((int(fixed[0]), int(fixed[1])), keep_aspect=False),)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def priors(self, size: tuple[int, int]) -> np.ndarray:
        if size not in self._priors:
            self._priors[size] = prior_boxes(self.ssd, size)
        return self._priors[size]

    def detect_once(self, image: np.ndarray, scale: ScalePass) -> np.ndarray:
        """One pass; boxes in image pixels."""
        h, w = scale.network_size(*image.shape[:2])
        blob = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.backend.meta.channel_order == "RGB":
            blob = cv2.cvtColor(blob, cv2.COLOR_BGR2RGB)
        loc, conf = split_outputs(self.backend.run(blob[None]))
        dets = detection_output(loc, conf, self.priors((h, w)), self.ssd, self.conf_threshold)
        if scale.max_face_px is not None:
            dets = dets[(dets[:, 2] - dets[:, 0]) * w < scale.max_face_px]
        dets[:, :4] *= np.array([image.shape[1], image.shape[0]] * 2, dtype=np.float32)
        return dets

    def infer(self, image: np.ndarray) -> np.ndarray:
        dets = [self.detect_once(image, scale) for scale in self.passes]
        if len(dets) == 1:
            return dets[0]
        merged = np.concatenate(dets)
        return merged[nms(merged[:, :4], merged[:, 4], MERGE_IOU)]


def split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(loc, conf)`` as ``(N, 4)`` and ``(N, C)``, whatever order the runtime lists outputs in."""
    if len(outputs) != 2:
        raise ValueError(f"a detector has 2 outputs (loc, conf), got {len(outputs)}")
    a, b = (o.reshape(o.shape[-2], o.shape[-1]) for o in outputs)
    return (a, b) if a.shape[-1] == 4 else (b, a)
