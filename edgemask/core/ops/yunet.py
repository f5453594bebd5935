"""YuNet's anchor-free heads in numpy: input geometry (scale, then pad to the stride multiple), decoding of
every grid cell into a box, a score and five landmarks, and the final NMS.

Decoding stays out of the exported graph, as for the SSD tail of res10: the files stay small and
integer-friendly, and the same code decodes the source ONNX (the export gate's reference) and every
exported file. The rules are those of :class:`~edgemask.core.metadata.GridConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemask.core.metadata import GridConfig
from edgemask.core.ops.boxes import nms

HEAD_KINDS = ("cls", "obj", "bbox", "kps")


@dataclass(frozen=True)
class Geometry:
    """How a frame becomes the network input: resized by ``scale`` to ``resized`` ``(h, w)``, then padded
    at the bottom and right to ``padded`` ``(h, w)``."""

    scale: float
    resized: tuple[int, int]
    padded: tuple[int, int]


def padded_side(side: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that holds ``side`` pixels (at least one multiple)."""
    return max(multiple, -(-side // multiple) * multiple)


def input_geometry(height: int, width: int, long_side: int | None, multiple: int) -> Geometry:
    """Scale so the longer side is ``long_side`` (``None``: keep the frame's size), keeping the aspect
    ratio, then pad both sides to multiples of ``multiple``."""
    if height < 1 or width < 1:
        raise ValueError(f"empty frame {width}x{height}")
    scale = 1.0 if long_side is None else long_side / max(height, width)
    resized = (max(1, round(height * scale)), max(1, round(width * scale)))
    padded = (padded_side(resized[0], multiple), padded_side(resized[1], multiple))
    return Geometry(scale, resized, padded)


def grid_cells(height: int, width: int, stride: int) -> np.ndarray:
    """``(rows * cols, 2)`` ``[col, row]`` of every cell of a padded ``height``×``width`` input, row-major."""
    rows, cols = height // stride, width // stride
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([c, r], axis=-1).astype(np.float32)


def decode_boxes(bbox: Any, cells: Any, stride: Any, xp: Any = np) -> Any:
    """Raw box outputs ``(..., 4)`` of cells ``[col, row]`` → ``x1y1x2y2`` input pixels. ``stride`` is a
    number or one per cell ``(N, 1)``; ``xp`` is the array namespace (numpy here, ``keras.ops`` in the
    detector's training loss, so training and the runtime decode with one formula)."""
    centre = (cells + bbox[..., :2]) * stride
    size = xp.exp(bbox[..., 2:]) * stride
    return xp.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def decode_stride(
    cls: np.ndarray, obj: np.ndarray, bbox: np.ndarray, kps: np.ndarray, cells: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stride's heads → ``(boxes (N, 4) x1y1x2y2, scores (N,), landmarks (N, 10))`` in input pixels."""
    scores = np.sqrt(np.clip(cls.reshape(-1), 0, 1) * np.clip(obj.reshape(-1), 0, 1))
    boxes = decode_boxes(bbox.reshape(-1, 4), cells, stride)
    kps = kps.reshape(len(cells), -1, 2)
    landmarks = ((kps + cells[:, None, :]) * stride).reshape(len(cells), -1)
    return boxes, scores, landmarks


def decode(
    outputs: Mapping[str, np.ndarray], input_hw: tuple[int, int], config: GridConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All strides' heads (named ``cls_8`` ... ``kps_32``) of one image → boxes, scores, landmarks."""
    parts = []
    for stride in config.strides:
        heads = [np.asarray(outputs[f"{kind}_{stride}"], dtype=np.float32) for kind in HEAD_KINDS]
        cells = grid_cells(*input_hw, stride)
        if heads[0].size != len(cells):
            raise ValueError(
                f"stride {stride}: {heads[0].size} cells in the output, {len(cells)} expected for a "
                f"{input_hw[1]}x{input_hw[0]} input"
            )
        parts.append(decode_stride(*heads, cells, stride))
    boxes, scores, landmarks = (np.concatenate(p) for p in zip(*parts, strict=True))
    return boxes, scores, landmarks


def select(
    boxes: np.ndarray, scores: np.ndarray, conf_threshold: float, nms_threshold: float, config: GridConfig
) -> np.ndarray:
    """Indices of the faces kept, best first: scores above ``conf_threshold``, the best ``top_k`` of them
    through greedy NMS at ``nms_threshold``, at most ``keep_top_k``."""
    return nms(boxes, scores, nms_threshold, conf_threshold, config.top_k)[: config.keep_top_k]
