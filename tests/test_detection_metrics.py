"""VOC matching, AP, recall by size, precision and found-face FAR/FRR on hand-computed cases."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.evaluation.detection_metrics import (
    FP,
    IGNORE,
    IGNORED,
    TP,
    DetectionEvaluator,
    average_precision,
    class_rates,
    match_detections,
    precision_recall,
    recall_by_size,
)

MASK, NO_MASK = 0, 1
SQUARE = [0, 0, 10, 10]
NAN = pytest.approx(math.nan, nan_ok=True)


def test_best_score_takes_the_face_and_the_duplicate_is_a_false_positive():
    # The 0.9 box overlaps less (IoU 0.6) but comes first, so the exact 0.8 box is the duplicate.
    dets = np.array([[0, 0, 10, 10], [0, 0, 10, 6]], dtype=float)
    outcome, taken_by = match_detections(dets, [0.8, 0.9], np.array([SQUARE]), [False])
    assert outcome.tolist() == [FP, TP]
    assert taken_by.tolist() == [-1, 0]


def test_iou_of_exactly_half_matches():
    outcome, _ = match_detections(np.array([[0, 0, 10, 5]]), [0.5], np.array([SQUARE]), [False])
    assert outcome.tolist() == [TP]
    outcome, _ = match_detections(np.array([[0, 0, 10, 4.9]]), [0.5], np.array([SQUARE]), [False])
    assert outcome.tolist() == [FP]


def test_detection_on_an_ignored_face_is_neither_hit_nor_miss():
    gts = np.array([SQUARE, [20, 20, 30, 30]], dtype=float)
    dets = np.array([[20, 20, 30, 30], [21, 20, 31, 30], [0, 0, 10, 10]], dtype=float)
    outcome, taken_by = match_detections(dets, [0.9, 0.8, 0.7], gts, [False, True])
    assert outcome.tolist() == [IGNORED, IGNORED, TP]  # several detections on an ignored box are all ignored
    assert taken_by.tolist() == [-1, -1, 0]


def test_no_ground_truth_makes_every_detection_false():
    outcome, taken_by = match_detections(np.array([SQUARE]), [0.9], np.zeros((0, 4)), [])
    assert outcome.tolist() == [FP]
    assert taken_by.tolist() == [-1]


def test_average_precision_by_hand():
    # 3 positives; ranked TP, FP, TP, FP -> recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2.
    recall, precision = precision_recall([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3)
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2])
    # Envelope: precision 1 up to recall 1/3, then 2/3 up to recall 2/3, then nothing.
    assert average_precision(recall, precision) == pytest.approx(1 / 3 + 2 / 9)


def test_average_precision_sorts_by_score_and_uses_the_envelope():
    # Same detections given in another order; a later higher precision lifts the earlier recall step.
    recall, precision = precision_recall([0.6, 0.7, 0.8, 0.9], [True, True, False, False], 2)
    np.testing.assert_allclose(precision, [0, 0, 1 / 3, 1 / 2])
    assert average_precision(recall, precision) == pytest.approx(0.5)


def test_no_detections_give_zero_ap_and_no_faces_of_a_class_give_nan():
    assert average_precision(*precision_recall([], [], 4)) == 0.0
    ev = DetectionEvaluator()
    ev.add([SQUARE], [MASK], [SQUARE], [NO_MASK], [0.9])
    s = ev.summary()
    assert s["ap"]["with_mask"] == 0.0
    assert math.isnan(s["ap"]["without_mask"])
    assert math.isnan(s["map"])


def scene_evaluator() -> DetectionEvaluator:
    """Two images, hand-built.

    Image 1: masked faces 10, 20 and 40 px wide, an ignored (incorrectly worn) face. Found: the 20 and 40
    px faces (the 40 px one twice), and the ignored face; one detection on background.
    Image 2: one unmasked face, found but called masked.
    """
    ev = DetectionEvaluator()
    ev.add(
        gt_boxes=[[0, 0, 10, 10], [20, 0, 40, 20], [50, 0, 90, 40], [100, 0, 120, 20]],
        gt_labels=[MASK, MASK, MASK, IGNORE],
        det_boxes=[[20, 0, 40, 20], [50, 0, 90, 40], [51, 0, 91, 40], [100, 0, 120, 20], [200, 0, 220, 20]],
        det_labels=[MASK, MASK, MASK, MASK, NO_MASK],
        det_scores=[0.9, 0.8, 0.7, 0.95, 0.6],
    )
    ev.add(
        gt_boxes=[[0, 0, 30, 30]],
        gt_labels=[NO_MASK],
        det_boxes=[[0, 0, 30, 30]],
        det_labels=[MASK],
        det_scores=[0.85],
    )
    return ev


def test_summary_of_hand_built_scenes():
    s = scene_evaluator().summary()
    assert (s["images"], s["faces"], s["ignored_faces"], s["detections"]) == (2, 4, 1, 6)
    assert s["recall"] == pytest.approx(3 / 4)
    assert s["recall_by_size"] == {
        "<16": {"recall": 0.0, "faces": 1},
        "16-32": {"recall": 1.0, "faces": 2},
        "32-64": {"recall": 1.0, "faces": 1},
        ">=64": {"recall": NAN, "faces": 0},
    }
    masked_by_size = s["recall_by_class_and_size"]["with_mask"]
    assert [masked_by_size[b]["faces"] for b in ("<16", "16-32", "32-64", ">=64")] == [1, 1, 1, 0]
    assert [masked_by_size[b]["recall"] for b in ("<16", "16-32", "32-64")] == [0.0, 1.0, 1.0]
    assert s["recall_by_class_and_size"]["without_mask"]["16-32"] == {"recall": 1.0, "faces": 1}
    # The small masked face is missed; the unmasked face is found (with the wrong label: still found).
    assert s["recall_by_class"] == {
        "with_mask": {"recall": pytest.approx(2 / 3), "faces": 3},
        "without_mask": {"recall": 1.0, "faces": 1},
    }
    # Face level: 3 TP, 2 FP (the duplicate and the background box), the ignored hit does not count.
    assert s["precision"] == pytest.approx(3 / 5)
    # with_mask (3 positives), ranked 0.85 FP (unmasked face), 0.9 TP, 0.8 TP, 0.7 FP (duplicate):
    # by score 0.9 TP, 0.85 FP, 0.8 TP, 0.7 FP -> AP = 1/3 * 1 + 1/3 * 2/3.
    assert s["ap"]["with_mask"] == pytest.approx(1 / 3 + 2 / 9)
    # without_mask: one positive, never detected with that label; the background box is a FP.
    assert s["ap"]["without_mask"] == 0.0
    assert s["map"] == pytest.approx((1 / 3 + 2 / 9) / 2)
    # Per class, at the operating point: "mask" detections are 0.9 TP, 0.8 TP, 0.7 FP (duplicate), 0.85 FP
    # (an unmasked face), the 0.95 one on the ignored face left out; the one "no_mask" detection is on
    # background.
    assert s["per_class"]["with_mask"] == {
        "recall": pytest.approx(2 / 3),
        "precision": 0.5,
        "true_positives": 2,
        "detections": 4,
        "faces": 3,
    }
    assert s["per_class"]["without_mask"] == {
        "recall": 0.0,
        "precision": 0.0,
        "true_positives": 0,
        "detections": 1,
        "faces": 1,
    }
    found = s["found_faces"]
    assert found["confusion"] == [[2, 0], [1, 0]]
    assert (found["far"], found["frr"]) == (1.0, 0.0)


def test_face_level_uses_face_scores_not_ranking_scores():
    # The class-confident duplicate has the lower face score, so the other box takes the face.
    ev = DetectionEvaluator()
    ev.add(
        gt_boxes=[SQUARE],
        gt_labels=[NO_MASK],
        det_boxes=[[0, 0, 10, 10], [0, 0, 10, 9]],
        det_labels=[MASK, NO_MASK],
        det_scores=[0.1, 0.9],
        det_face_scores=[0.95, 0.9],
    )
    s = ev.summary()
    assert s["found_faces"]["confusion"] == [[0, 0], [1, 0]]
    assert s["ap"]["without_mask"] == 1.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="same length"):
        DetectionEvaluator().add([SQUARE], [MASK], [SQUARE], [MASK, MASK], [0.5])


def test_three_detections_ap_by_hand():
    # Two masked faces; "mask" detections ranked 0.9 on face A, 0.8 on background, 0.7 on face B:
    # recall 1/2, 1/2, 1 and precision 1, 1/2, 2/3. The envelope is 1 up to recall 1/2, then 2/3,
    # so AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    ev = DetectionEvaluator()
    ev.add(
        gt_boxes=[[0, 0, 20, 20], [40, 0, 60, 20]],
        gt_labels=[MASK, MASK],
        det_boxes=[[0, 0, 20, 20], [100, 100, 120, 120], [41, 0, 61, 20]],
        det_labels=[MASK, MASK, MASK],
        det_scores=[0.9, 0.8, 0.7],
    )
    s = ev.summary()
    assert s["ap"]["with_mask"] == pytest.approx(5 / 6)
    assert s["per_class"]["with_mask"]["recall"] == 1.0
    assert s["per_class"]["with_mask"]["precision"] == pytest.approx(2 / 3)
    recall, precision = ev.pr_curves()["with_mask"]
    np.testing.assert_allclose(recall, [1 / 2, 1 / 2, 1])
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3])


def test_a_face_called_the_wrong_class_is_found_but_a_miss_and_a_false_positive_of_its_classes():
    ev = DetectionEvaluator()
    ev.add([SQUARE], [NO_MASK], [SQUARE], [MASK], [0.9])
    s = ev.summary()
    assert s["recall_by_class"]["without_mask"]["recall"] == 1.0  # the face was found
    assert s["per_class"]["without_mask"]["recall"] == 0.0  # but not as no_mask
    assert s["per_class"]["with_mask"]["precision"] == 0.0  # and the mask detection is a false one


def test_size_bins_are_half_open_by_width():
    widths = np.array([0, 15.9, 16, 31.9, 32, 63.9, 64, 500])
    found = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    by_size = recall_by_size(widths, found)
    assert {k: v["faces"] for k, v in by_size.items()} == {"<16": 2, "16-32": 2, "32-64": 2, ">=64": 2}
    assert [v["recall"] for v in by_size.values()] == [0.5, 1.0, 0.0, 0.5]


def test_class_rates_without_detections_or_faces_are_nan():
    empty = class_rates(np.zeros(0, dtype=bool), 0)
    assert math.isnan(empty["recall"]) and math.isnan(empty["precision"])
    assert class_rates(np.array([True, False]), 4)["recall"] == 0.25


@given(
    hits=st.lists(st.booleans(), max_size=30),
    extra_positives=st.integers(0, 10),
    scores=st.lists(st.floats(0, 1), min_size=30, max_size=30),
)
@settings(max_examples=100, deadline=None)
def test_average_precision_is_a_fraction(hits, extra_positives, scores):
    n_positives = sum(hits) + extra_positives
    if n_positives == 0:
        return
    ap = average_precision(*precision_recall(scores[: len(hits)], hits, n_positives))
    assert 0.0 <= ap <= 1.0 + 1e-12


BOX = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(4, 30), st.integers(4, 30)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]
)


@given(
    gt=st.lists(st.tuples(BOX, st.sampled_from([MASK, NO_MASK])), min_size=1, max_size=6),
    dets=st.lists(st.tuples(BOX, st.sampled_from([MASK, NO_MASK]), st.floats(0.01, 1)), max_size=8),
    pick=st.integers(0, 5),
    score=st.floats(0.01, 1),
)
@settings(max_examples=150, deadline=None)
def test_adding_a_perfect_detection_never_lowers_recall(gt, dets, pick, score):
    gt_boxes, gt_labels = [g[0] for g in gt], [g[1] for g in gt]
    target = pick % len(gt)

    def summary(extra: list) -> dict:
        ev = DetectionEvaluator()
        rows = dets + extra
        ev.add(
            gt_boxes,
            gt_labels,
            np.array([d[0] for d in rows], dtype=float).reshape(-1, 4),
            [d[1] for d in rows],
            [d[2] for d in rows],
        )
        return ev.summary()

    before = summary([])
    after = summary([(gt_boxes[target], gt_labels[target], score)])
    assert after["recall"] >= before["recall"]
    for label in ("with_mask", "without_mask"):
        if before["per_class"][label]["faces"]:
            assert after["per_class"][label]["recall"] >= before["per_class"][label]["recall"]
