"""Pure box geometry shared by every stage: growing and clamping boxes, the one face-crop rule, IoU and
greedy NMS. Boxes are ``[x1, y1, x2, y2]`` corners, in pixels unless a caller says otherwise."""

from __future__ import annotations

import numpy as np


def expand_box(box: np.ndarray, margin: float | np.ndarray) -> np.ndarray:
    """Grow ``[x1, y1, x2, y2]`` boxes by ``margin`` of their width/height on every side."""
    box = np.asarray(box, dtype=np.float32)
    w = box[..., 2] - box[..., 0]
    h = box[..., 3] - box[..., 1]
    d = np.stack([-w, -h, w, h], axis=-1) * margin
    return box + d


def clamp_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer pixel boxes inside a ``width``×``height`` image; x2 > x1 and y2 > y1 whenever the box
    overlaps the image at all (a degenerate box gets one pixel)."""
    box = np.asarray(box, dtype=np.float64)
    x1 = np.clip(np.floor(box[..., 0]), 0, width - 1)
    y1 = np.clip(np.floor(box[..., 1]), 0, height - 1)
    x2 = np.clip(np.ceil(box[..., 2]), x1 + 1, width)
    y2 = np.clip(np.ceil(box[..., 3]), y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=-1).astype(np.int64)


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of an already clamped integer box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return image[y1:y2, x1:x2]


def face_crop_boxes(boxes: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """The one crop rule of edgemask: detector (or ground-truth) boxes grown by ``margin`` of their size on
    every side, then clamped to the image. The classifier, the sorted crops and evaluation all use it."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return clamp_box(expand_box(boxes, margin), width, height)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``[x1, y1, x2, y2]`` boxes; an inverted box has area 0."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return np.where((w < 0) | (h < 0), 0.0, w * h)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with many (Caffe's ``JaccardOverlap``, no +1 pixel)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area(box) + box_area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoUs of two broadcastable ``[..., 4]`` box arrays, element by element."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    size = np.maximum(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0)
    inter = size[..., 0] * size[..., 1]
    union = box_area(a) + box_area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoUs, broadcast in one step (the tracker calls it every frame)."""
    return pairwise_iou(np.reshape(a, (-1, 1, 4)), np.reshape(b, (1, -1, 4)))


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    score_threshold: float = 0.0,
    top_k: int | None = None,
) -> np.ndarray:
    """Greedy NMS as Caffe's ``ApplyNMSFast``: indices of kept boxes, highest score first.

    Candidates are the scores strictly above ``score_threshold`` (at most ``top_k``, stable order on ties);
    a box is dropped when it overlaps a kept one by more than ``iou_threshold``. Each kept box removes the
    candidates it suppresses in one vectorized step, so the loop runs once per kept box, not per candidate
    (a YuNet frame has several candidates per face).
    """
    scores = np.asarray(scores)
    candidates = np.flatnonzero(scores > score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if top_k is not None:
        order = order[:top_k]
    boxes = np.asarray(boxes, dtype=np.float64)[order]
    kept: list[int] = []
    remaining = np.arange(len(order))
    while remaining.size:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(order[best]))
        remaining = rest[iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)
