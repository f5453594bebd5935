"""Stage 1, YuNet family: a small anchor-free face detector made for small faces (libfacedetection.train,
Apache-2.0), with five landmarks per face. One pass per frame: the frame scaled so its long side is
``long_side`` (keeping the aspect ratio), padded to the stride multiple. Decoding is
:mod:`edgemask.core.ops.yunet`.
"""

from __future__ import annotations

import os

import numpy as np

from edgemask.core.backends import Backend, load_backend
from edgemask.core.detectors.base import Detections, Pass
from edgemask.core.metadata import GridConfig
from edgemask.core.ops.image import resize
from edgemask.core.ops.yunet import decode, input_geometry, select

FAMILY = "yunet"
DEFAULT_LONG_SIDE = 640
"""The operating point: long side of the network input. ``benchmarks/accuracy.py --sweep`` on both halves
of scenes_dev picks 640 at 0.5 with the fp32 file as the fastest setting meeting every target; 512 finds
under 78 % of the faces on a half (README, "Choosing the detector")."""
DEFAULT_CONFIDENCE = 0.5
"""Face score threshold written into exported files: at 640 px the best mAP that keeps precision >= 70 %
on both halves (0.3 and 0.4 report ~40 % and ~33 % unmatched boxes)."""
GATE_CONFIDENCE = DEFAULT_CONFIDENCE
"""The export gate checks parity at the operating point's own threshold."""
DEFAULT_NMS = 0.3
"""IoU threshold of the final NMS, as OpenCV's FaceDetectorYN."""
OPERATING_POINT = {"long_side": DEFAULT_LONG_SIDE}
MIN_LONG_SIDE = 32
PAD_MULTIPLE = GridConfig().pad_multiple


def frame_pass(
    image: np.ndarray,
    long_side: int,
    multiple: int,
    bgr: bool = True,
    fixed_size: tuple[int, int] | None = None,
) -> Pass:
    """The network input of one frame: scaled to ``long_side`` (or to fit a file's ``fixed_size``),
    padded with black at the bottom and right to multiples of ``multiple``."""
    h, w = image.shape[:2]
    if fixed_size is not None:
        scale = min(fixed_size[0] / h, fixed_size[1] / w)
        resized = (max(1, min(fixed_size[0], round(h * scale))), max(1, min(fixed_size[1], round(w * scale))))
        padded = fixed_size
    else:
        geometry = input_geometry(h, w, long_side, multiple)
        resized, padded = geometry.resized, geometry.padded
    blob = np.zeros((1, *padded, 3), np.uint8)
    content = resize(image, resized)
    blob[0, : resized[0], : resized[1]] = content if bgr else content[..., ::-1]
    return Pass(blob, (h, w), resized)


class YuNetDetector:
    """Faces in a BGR image as ``(K, 5)`` rows ``[x1, y1, x2, y2, score]`` in the image's pixels;
    :meth:`detect` adds the five landmarks (right eye, left eye, nose tip, right and left mouth corner,
    as the person sees them)."""

    family = FAMILY

    def __init__(
        self,
        model: str | os.PathLike | Backend,
        conf_threshold: float | None = None,
        nms_threshold: float | None = None,
        long_side: int | None = None,
        threads: int = 1,
    ) -> None:
        self.backend = model if isinstance(model, Backend) else load_backend(model, threads)
        meta = self.backend.meta
        if meta.task != "detect" or meta.family != FAMILY or meta.grid is None:
            raise ValueError(f"{self.backend.path}: not a YuNet face detector (family {meta.family!r})")
        self.grid = meta.grid
        self.conf_threshold = conf_threshold if conf_threshold is not None else meta.thresholds["confidence"]
        self.nms_threshold = nms_threshold if nms_threshold is not None else meta.thresholds["nms"]
        default = meta.operating_point.get("long_side", DEFAULT_LONG_SIDE)
        self.long_side = int(long_side or default)
        if self.long_side < MIN_LONG_SIDE:
            raise ValueError(f"long side {self.long_side} px: YuNet needs at least {MIN_LONG_SIDE}")
        self.fixed_size = None if None in meta.input_size else tuple(int(s) for s in meta.input_size)
        self.bgr = meta.channel_order == "BGR"

    def passes(self, image: np.ndarray) -> list[Pass]:
        return [frame_pass(image, self.long_side, self.grid.pad_multiple, self.bgr, self.fixed_size)]

    def run_pass(self, p: Pass) -> Detections:
        outputs = dict(zip(self.backend.meta.outputs, self.backend.run(p.blob), strict=True))
        boxes, scores, landmarks = decode(outputs, p.size, self.grid)
        keep = select(boxes, scores, self.conf_threshold, self.nms_threshold, self.grid)
        found = Detections(boxes[keep], scores[keep], landmarks[keep])
        sx = p.frame_hw[1] / p.resized_hw[1]
        sy = p.frame_hw[0] / p.resized_hw[0]
        return found.scaled(sx, sy)

    def detect(self, image: np.ndarray) -> Detections:
        return self.run_pass(self.passes(image)[0])

    def infer(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image).as_array()
