"""Stage 1, res10 family: OpenCV's SSD ResNet-10 face detector, run on an exported model file, at one or
two scales. The SSD tail (priors, decoding, NMS) is :mod:`edgemask.core.ops.ssd`."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgemask.core.backends import Backend, load_backend
from edgemask.core.detectors.base import Detections, Pass
from edgemask.core.ops.image import resize
from edgemask.core.ops.ssd import detection_output, prior_boxes

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
DEFAULT_CONFIDENCE = 0.2
"""The face threshold written into exported files. The Caffe file's own 0.01 keeps every weak candidate;
OpenCV's sample uses 0.5. ``benchmarks/accuracy.py --sweep`` found 0.2 best for mAP@0.5 on both halves of
scenes_dev at every detector size, with FAR/FRR on found faces unchanged."""
GATE_CONFIDENCE = 0.5
"""The export gate checks parity at OpenCV's sample threshold: below it res10's boxes are many and weak,
and int8 reorders them (at 0.2 the int8 file keeps 95.6 % of the reference's boxes while finding 53.2 %
of the annotated faces to fp32's 53.7 %); the benchmarks score the 0.2 operating point end to end."""
FAMILY = "res10"
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


def squash_pass(image: np.ndarray, size: tuple[int, int], rgb: bool = False) -> Pass:
    """The frame squashed to ``size`` ``(h, w)`` as OpenCV's sample feeds it, through the runtime's
    bit-exact :func:`~edgemask.core.ops.image.resize` (OpenCV's bilinear differs between CPUs)."""
    blob = resize(image, size)
    if rgb:
        blob = cv2.cvtColor(blob, cv2.COLOR_BGR2RGB)
    return Pass(blob[None], image.shape[:2], size)


def frame_passes(image: np.ndarray, scales: tuple[ScalePass, ...], rgb: bool = False) -> list[Pass]:
    """The network inputs of one frame, one per scale (what the export gate and calibration use too)."""
    return [squash_pass(image, s.network_size(*image.shape[:2]), rgb) for s in scales]


OPERATING_POINT = {"small_face_size": DEFAULT_SMALL_FACE_SIZE}
"""What exported files record as their default (the squashed pass follows from it: 224 px beside it)."""


class Res10Detector:
    """Faces in a BGR image as ``(K, 5)`` rows ``[x1, y1, x2, y2, score]`` in the image's pixels.

    The image is squashed to ``input_size``² as in OpenCV's sample; ``small_face_size`` adds a second pass
    with the longest side enlarged to that many pixels, which finds faces under ~30 px that a 300-px pass
    misses (measured in benchmarks/accuracy.py): ``None`` takes the file's operating point, 0 turns it off.
    A model file exported at a fixed size runs one pass at that size.
    """

    family = FAMILY

    def __init__(
        self,
        model: str | os.PathLike | Backend,
        conf_threshold: float | None = None,
        nms_threshold: float | None = None,
        input_size: int | None = None,
        small_face_size: int | None = None,
        threads: int = 1,
    ) -> None:
        self.backend = model if isinstance(model, Backend) else load_backend(model, threads)
        meta = self.backend.meta
        if meta.task != "detect" or meta.family != FAMILY or meta.ssd is None:
            raise ValueError(f"{self.backend.path}: not a res10 SSD face detector (family {meta.family!r})")
        self.ssd = meta.ssd
        self.conf_threshold = conf_threshold if conf_threshold is not None else meta.thresholds["confidence"]
        if nms_threshold is not None:
            self.ssd = replace(self.ssd, nms_threshold=nms_threshold)
        fixed = meta.input_size
        if small_face_size is None:
            small_face_size = meta.operating_point.get("small_face_size", DEFAULT_SMALL_FACE_SIZE)
        if None in fixed:
            self.scales = scale_passes(input_size, small_face_size or None)
        else:
            self.scales = (ScalePass((int(fixed[0]), int(fixed[1])), keep_aspect=False),)
        self.backend.keep_shapes(len(self.scales))
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def priors(self, size: tuple[int, int]) -> np.ndarray:
        if size not in self._priors:
            self._priors[size] = prior_boxes(self.ssd, size)
        return self._priors[size]

    def passes(self, image: np.ndarray) -> list[Pass]:
        return frame_passes(image, self.scales, self.backend.meta.channel_order == "RGB")

    def run_pass(self, p: Pass) -> Detections:
        """One pass, every box the SSD tail keeps; boxes in frame pixels."""
        loc, conf = split_outputs(self.backend.run(p.blob))
        dets = detection_output(loc, conf, self.priors(p.size), self.ssd, self.conf_threshold)
        dets[:, :4] *= np.array([p.frame_hw[1], p.frame_hw[0]] * 2, dtype=np.float32)
        return Detections(dets[:, :4], dets[:, 4])

    def detect(self, image: np.ndarray) -> Detections:
        found = []
        for scale, p in zip(self.scales, self.passes(image), strict=True):
            dets = self.run_pass(p)
            if scale.max_face_px is not None:
                width_px = (dets.boxes[:, 2] - dets.boxes[:, 0]) * p.size[1] / p.frame_hw[1]
                dets = dets.take(np.flatnonzero(width_px < scale.max_face_px))
            found.append(dets)
        return Detections.merge(found, MERGE_IOU)

    def infer(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image).as_array()


def split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(loc, conf)`` as ``(N, 4)`` and ``(N, C)``, whatever order the runtime lists outputs in."""
    if len(outputs) != 2:
        raise ValueError(f"a detector has 2 outputs (loc, conf), got {len(outputs)}")
    a, b = (o.reshape(o.shape[-2], o.shape[-1]) for o in outputs)
    return (a, b) if a.shape[-1] == 4 else (b, a)
