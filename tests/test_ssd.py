"""SSD priors, decoding and NMS against hand-computed values and invariants."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgemask.core.metadata import PriorHead, SSDConfig
from edgemask.core.ops.boxes import iou, nms
from edgemask.core.ops.ssd import (
    decode_boxes,
    detection_output,
    feature_map_size,
    head_aspect_ratios,
    head_priors,
    prior_boxes,
)


def head(**kw) -> PriorHead:
    base = dict(
        min_size=30.0,
        max_size=60.0,
        aspect_ratios=(2.0,),
        flip=True,
        clip=False,
        step=8.0,
        offset=0.5,
        chain=((3, 2, 1, False),),
    )
    return PriorHead(**{**base, **kw})


def test_feature_map_size_matches_caffe_rounding() -> None:
    # conv 7x7/2 pad 3 then Caffe max-pool 3x3/2 (ceil mode): 300 -> 150 -> 75 (floor would give 74).
    assert feature_map_size(300, [(7, 2, 3, False), (3, 2, 0, True)]) == 75
    assert feature_map_size(301, [(7, 2, 3, False)]) == 151
    # ceil mode with padding drops a window that would start in the padding only
    assert feature_map_size(3, [(2, 2, 1, True)]) == 2


def test_aspect_ratios_follow_caffe_order_without_duplicates() -> None:
    assert head_aspect_ratios(head(aspect_ratios=(2.0, 3.0))) == [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]
    assert head_aspect_ratios(head(aspect_ratios=(2.0, 2.0, 1.0), flip=False)) == [1.0, 2.0]


def test_head_priors_hand_computed() -> None:
    # One 1x1 map cell on a 100x200 (h x w) image, step 8: centre (4, 4).
    priors = head_priors(head(), image_hw=(100, 200), map_hw=(1, 1))
    s = math.sqrt(30 * 60)
    w2, h2 = 30 * math.sqrt(2), 30 / math.sqrt(2)
    expected = np.array(
        [
            [4 - 15, 4 - 15, 4 + 15, 4 + 15],
            [4 - s / 2, 4 - s / 2, 4 + s / 2, 4 + s / 2],
            [4 - w2 / 2, 4 - h2 / 2, 4 + w2 / 2, 4 + h2 / 2],
            [4 - h2 / 2, 4 - w2 / 2, 4 + h2 / 2, 4 + w2 / 2],
        ]
    ) / np.array([200, 100, 200, 100])
    np.testing.assert_allclose(priors, expected, rtol=1e-6)


def test_priors_are_cell_major_and_step_defaults_to_image_over_map() -> None:
    priors = head_priors(head(step=None, max_size=None, aspect_ratios=()), image_hw=(40, 60), map_hw=(2, 3))
    centres = (priors[:, :2] + priors[:, 2:]) / 2 * np.array([60, 40])
    np.testing.assert_allclose(centres, [[10, 10], [30, 10], [50, 10], [10, 30], [30, 30], [50, 30]])


@given(h=st.integers(16, 800), w=st.integers(16, 800))
@settings(max_examples=40, deadline=None)
def test_prior_count_for_any_input_size(h: int, w: int) -> None:
    config = SSDConfig(heads=(head(), head(step=16.0, chain=((3, 2, 1, False), (3, 2, 1, False)))))
    n = sum(feature_map_size(h, hd.chain) * feature_map_size(w, hd.chain) * 4 for hd in config.heads)
    priors = prior_boxes(config, (h, w))
    assert priors.shape == (n, 4)
    assert np.all(priors[:, 2] > priors[:, 0]) and np.all(priors[:, 3] > priors[:, 1])


def encode(boxes: np.ndarray, priors: np.ndarray, var: tuple) -> np.ndarray:
    """The inverse of CENTER_SIZE decoding, written out independently."""
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = priors[:, 0] + pw / 2, priors[:, 1] + ph / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bcx, bcy = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    return np.stack(
        [
            (bcx - pcx) / pw / var[0],
            (bcy - pcy) / ph / var[1],
            np.log(bw / pw) / var[2],
            np.log(bh / ph) / var[3],
        ],
        axis=1,
    )


def test_decode_of_zero_offsets_is_the_prior() -> None:
    priors = np.array([[0.1, 0.2, 0.3, 0.6]])
    np.testing.assert_allclose(
        decode_boxes(np.zeros((1, 4)), priors, (0.1, 0.1, 0.2, 0.2)), priors, rtol=1e-6
    )


@given(
    xy=arrays(np.float64, (5, 2), elements=st.floats(0.0, 0.8)),
    wh=arrays(np.float64, (5, 2), elements=st.floats(0.05, 0.2)),
    pxy=arrays(np.float64, (5, 2), elements=st.floats(0.0, 0.8)),
    pwh=arrays(np.float64, (5, 2), elements=st.floats(0.05, 0.2)),
)
@settings(max_examples=50, deadline=None)
def test_decode_inverts_encode(xy, wh, pxy, pwh) -> None:
    boxes = np.concatenate([xy, xy + wh], axis=1)
    priors = np.concatenate([pxy, pxy + pwh], axis=1)
    var = (0.1, 0.1, 0.2, 0.2)
    np.testing.assert_allclose(decode_boxes(encode(boxes, priors, var), priors, var), boxes, atol=1e-5)


def test_iou_hand_computed() -> None:
    a = np.array([0.0, 0.0, 2.0, 2.0])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(iou(a, b), [1 / 7, 0.0, 1.0, 0.0])


def test_nms_hand_computed() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # 3 (0.95) suppresses 0 (IoU 0.9) and 1; 2 is far away.
    assert nms(boxes, scores, iou_threshold=0.45).tolist() == [3, 2]
    assert nms(boxes, scores, iou_threshold=0.45, score_threshold=0.75).tolist() == [3]
    assert nms(boxes, scores, iou_threshold=0.99, top_k=2).tolist() == [3, 0]


@given(
    xy=arrays(np.float64, (30, 2), elements=st.floats(0, 100)),
    wh=arrays(np.float64, (30, 2), elements=st.floats(1, 50)),
    scores=arrays(np.float64, 30, elements=st.floats(0, 1)),
    thr=st.floats(0.1, 0.9),
)
@settings(max_examples=50, deadline=None)
def test_nms_properties(xy, wh, scores, thr) -> None:
    boxes = np.concatenate([xy, xy + wh], axis=1)
    keep = nms(boxes, scores, thr, score_threshold=0.2)
    assert np.all(scores[keep] > 0.2)
    assert np.all(np.diff(scores[keep]) <= 0)
    for i, k in enumerate(keep):
        assert np.all(iou(boxes[k], boxes[keep[i + 1 :]]) <= thr)
    # every dropped candidate overlaps a kept box with a score at least as high
    for d in set(np.flatnonzero(scores > 0.2)) - set(keep.tolist()):
        ov = iou(boxes[d], boxes[keep])
        assert np.any((ov > thr) & (scores[keep] >= scores[d]))


def greedy_nms(boxes, scores, thr, score_threshold, top_k):
    """Caffe's ApplyNMSFast written out plainly: candidates best first, each kept unless it overlaps an
    already kept box by more than ``thr`` (IoU by hand, one pair at a time)."""

    def pair_iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    order = sorted((i for i in range(len(scores)) if scores[i] > score_threshold), key=lambda i: -scores[i])
    kept = []
    for i in order[:top_k]:
        if all(pair_iou(boxes[i], boxes[k]) <= thr for k in kept):
            kept.append(i)
    return kept


@given(
    xy=arrays(np.float64, (40, 2), elements=st.floats(0, 60)),
    wh=arrays(np.float64, (40, 2), elements=st.floats(1, 40)),
    scores=arrays(np.float64, 40, elements=st.sampled_from([0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 0.95])),
    thr=st.floats(0.1, 0.9),
    top_k=st.sampled_from([None, 5, 20]),
)
@settings(max_examples=80, deadline=None)
def test_nms_equals_the_plain_greedy_definition(xy, wh, scores, thr, top_k) -> None:
    """Crowded boxes with tied scores (ties keep index order, as the stable sort). The hand IoU does the
    same float64 operations in the same order, so the decisions agree exactly, at the threshold too."""
    boxes = np.concatenate([xy, xy + wh], axis=1)
    expected = greedy_nms(boxes, scores, thr, 0.2, top_k)
    assert nms(boxes, scores, thr, score_threshold=0.2, top_k=top_k).tolist() == expected


def test_detection_output_keeps_best_box_in_normalized_coordinates() -> None:
    config = SSDConfig(heads=(), nms_threshold=0.45, top_k=10, keep_top_k=1)
    priors = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]], dtype=np.float32)
    conf = np.array([[0.2, 0.8], [0.1, 0.9], [0.3, 0.7]], dtype=np.float32)
    out = detection_output(np.zeros((3, 4)), conf, priors, config, conf_threshold=0.5)
    np.testing.assert_allclose(out, [[0.12, 0.1, 0.32, 0.3, 0.9]], rtol=1e-6)
