"""YuNet's training losses, as libfacedetection.train weighs them: sigmoid BCE on ``obj`` over every cell
(target 1 on positives, 0 elsewhere) and on ``cls`` over the positives (target: the IoU of the cell's own
predicted box with its face, so the score tracks box quality), EIoU on the positives' boxes (×5) and
SmoothL1 on their landmark outputs (×0.1), all summed and divided by the number of positives.

The heads already end in a sigmoid (the ONNX graph's), so the BCE takes probabilities, clipped away from
0 and 1. Boxes decode with the runtime's own :func:`~edgemask.core.ops.yunet.decode_boxes`.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from edgemask.core.ops.yunet import decode_boxes
from edgemask.training.detector.config import LossWeights

PROB_EPS = 1e-6
BOX_EPS = 1e-7


def bce(p: Any, target: Any) -> Any:
    """Elementwise binary cross-entropy of probabilities ``p`` against ``target`` in [0, 1]."""
    p = ops.clip(p, PROB_EPS, 1 - PROB_EPS)
    return -(target * ops.log(p) + (1 - target) * ops.log(1 - p))


def iou_and_enclosure(a: Any, b: Any) -> tuple[Any, Any, Any, Any]:
    """``(iou, enclosing width, enclosing height, squared centre distance)`` of ``x1y1x2y2`` boxes."""
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iw = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    iou = inter / (wa * ha + wb * hb - inter + BOX_EPS)
    cw = ops.maximum(a[..., 2], b[..., 2]) - ops.minimum(a[..., 0], b[..., 0])
    ch = ops.maximum(a[..., 3], b[..., 3]) - ops.minimum(a[..., 1], b[..., 1])
    dx = (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) / 2
    dy = (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) / 2
    return iou, cw, ch, dx * dx + dy * dy


def eiou_loss(pred: Any, target: Any) -> Any:
    """EIoU: ``1 - IoU + ρ²(centres)/c² + Δw²/c_w² + Δh²/c_h²`` with ``c`` the enclosing box (0 for
    identical boxes)."""
    iou, cw, ch, dist2 = iou_and_enclosure(pred, target)
    dw = (pred[..., 2] - pred[..., 0]) - (target[..., 2] - target[..., 0])
    dh = (pred[..., 3] - pred[..., 1]) - (target[..., 3] - target[..., 1])
    return (
        1
        - iou
        + dist2 / (cw * cw + ch * ch + BOX_EPS)
        + dw * dw / (cw * cw + BOX_EPS)
        + dh * dh / (ch * ch + BOX_EPS)
    )


def smooth_l1(x: Any, beta: float = 1.0) -> Any:
    ax = ops.abs(x)
    return ops.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta)


def detector_loss(
    heads: dict[str, Any], targets: dict[str, Any], cells: Any, strides: Any, weights: LossWeights
) -> dict[str, Any]:
    """The four weighted losses and their ``total`` for a batch.

    ``heads``: ``cls``/``obj`` ``(B, N)``, ``bbox`` ``(B, N, 4)``, ``kps`` ``(B, N, 10)``, every stride's
    cells concatenated; ``targets``: the stacked :class:`~edgemask.training.detector.assign.Targets`;
    ``cells`` ``(N, 2)`` and ``strides`` ``(N, 1)`` the priors.
    """
    pos = targets["positive"]
    num_pos = ops.maximum(ops.sum(pos), 1.0)
    boxes = decode_boxes(heads["bbox"], cells, strides, xp=ops)
    box_term = eiou_loss(boxes, targets["boxes"])
    quality = ops.stop_gradient(iou_and_enclosure(boxes, targets["boxes"])[0])
    obj = ops.sum(bce(heads["obj"], pos) * targets["obj_weight"]) / num_pos
    cls = ops.sum(bce(heads["cls"], quality) * pos) / num_pos
    box = ops.sum(box_term * pos) / num_pos
    kps_w = targets["landmark_weight"]
    kps = ops.sum(smooth_l1(heads["kps"] - targets["landmarks"]) * kps_w[..., None])
    kps = kps / ops.maximum(ops.sum(kps_w), 1.0)
    parts = {
        "obj": weights.obj * obj,
        "cls": weights.cls * cls,
        "box": weights.box * box,
        "landmarks": weights.landmarks * kps,
    }
    parts["total"] = parts["obj"] + parts["cls"] + parts["box"] + parts["landmarks"]
    return parts
