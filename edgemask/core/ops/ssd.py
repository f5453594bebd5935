"""The SSD tail of the face detector in numpy, with the meaning of Caffe's ``PriorBox`` and
``DetectionOutput`` layers: priors for any input size, box decoding with variances, greedy NMS.

Keeping this out of the exported graph keeps the model files small and quantization-friendly, and lets
the detector run at input sizes other than the 300×300 it was trained at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgemask.core.metadata import PriorHead, SSDConfig
from edgemask.core.ops.boxes import nms


def feature_map_size(size: int, chain: Sequence[Sequence]) -> int:
    """Spatial size after a chain of ``(kernel, stride, pad, ceil_mode)`` ops, with Caffe's rounding."""
    for kernel, stride, pad, ceil_mode in chain:
        if ceil_mode:
            out = math.ceil((size + 2 * pad - kernel) / stride) + 1
            if pad > 0 and (out - 1) * stride >= size + pad:
                out -= 1
        else:
            out = (size + 2 * pad - kernel) // stride + 1
        size = out
    return size


def head_aspect_ratios(head: PriorHead) -> list[float]:
    """Caffe's list: 1 first, then each ratio (and its inverse with ``flip``), duplicates dropped."""
    ratios = [1.0]
    for ar in head.aspect_ratios:
        for r in (ar, 1.0 / ar) if head.flip else (ar,):
            if all(abs(r - seen) > 1e-6 for seen in ratios):
                ratios.append(r)
    return ratios


def head_box_sizes(head: PriorHead) -> np.ndarray:
    """``(A, 2)`` prior widths and heights in pixels, in Caffe's order: min, sqrt(min·max), ratios."""
    sizes = [(head.min_size, head.min_size)]
    if head.max_size:
        s = math.sqrt(head.min_size * head.max_size)
        sizes.append((s, s))
    for ar in head_aspect_ratios(head)[1:]:
        sizes.append((head.min_size * math.sqrt(ar), head.min_size / math.sqrt(ar)))
    return np.asarray(sizes, dtype=np.float64)


def head_priors(head: PriorHead, image_hw: tuple[int, int], map_hw: tuple[int, int]) -> np.ndarray:
    """``(map_h·map_w·A, 4)`` priors ``[x1, y1, x2, y2]`` normalized to the image, cell-major like Caffe."""
    img_h, img_w = image_hw
    map_h, map_w = map_hw
    step_h = head.step or img_h / map_h
    step_w = head.step or img_w / map_w
    cy, cx = np.meshgrid(
        (np.arange(map_h) + head.offset) * step_h, (np.arange(map_w) + head.offset) * step_w, indexing="ij"
    )
    centers = np.stack([cx.ravel(), cy.ravel()], axis=-1)[:, None, :]
    half = head_box_sizes(head)[None, :, :] / 2
    boxes = np.concatenate([centers - half, centers + half], axis=-1).reshape(-1, 4)
    boxes /= np.array([img_w, img_h, img_w, img_h], dtype=np.float64)
    if head.clip:
        np.clip(boxes, 0.0, 1.0, out=boxes)
    return boxes


def prior_boxes(config: SSDConfig, image_hw: tuple[int, int]) -> np.ndarray:
    """All priors of the network for an ``(height, width)`` input, in the order of the model's outputs."""
    parts = []
    for head in config.heads:
        map_hw = (feature_map_size(image_hw[0], head.chain), feature_map_size(image_hw[1], head.chain))
        parts.append(head_priors(head, image_hw, map_hw))
    return np.concatenate(parts).astype(np.float32)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: Sequence[float]) -> np.ndarray:
    """Caffe ``CENTER_SIZE`` decoding of ``(N, 4)`` offsets against ``(N, 4)`` corner priors."""
    loc = np.asarray(loc, dtype=np.float32)
    pw = priors[:, 2] - priors[:, 0]
    ph = priors[:, 3] - priors[:, 1]
    pcx = (priors[:, 0] + priors[:, 2]) / 2
    pcy = (priors[:, 1] + priors[:, 3]) / 2
    cx = variances[0] * loc[:, 0] * pw + pcx
    cy = variances[1] * loc[:, 1] * ph + pcy
    w = np.exp(variances[2] * loc[:, 2]) * pw
    h = np.exp(variances[3] * loc[:, 3]) * ph
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def detection_output(
    loc: np.ndarray, conf: np.ndarray, priors: np.ndarray, config: SSDConfig, conf_threshold: float
) -> np.ndarray:
    """Caffe ``DetectionOutput`` for one image and one foreground class.

    ``loc`` ``(N, 4)``, ``conf`` ``(N, C)`` softmax scores, ``priors`` ``(N, 4)``. Returns ``(K, 5)``
    ``[x1, y1, x2, y2, score]`` normalized to the input, best first.
    """
    boxes = decode_boxes(loc, priors, config.variances)
    foreground = 1 if config.background_label == 0 else 0
    scores = np.asarray(conf)[:, foreground]
    keep = nms(boxes, scores, config.nms_threshold, conf_threshold, config.top_k)[: config.keep_top_k]
    return np.concatenate([boxes[keep], scores[keep, None]], axis=1).astype(np.float32)
