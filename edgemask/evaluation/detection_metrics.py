"""Detection quality against PASCAL VOC boxes, in pure numpy: face recall (overall, by face size and by
class: masked people must be found too), precision, AP, recall and precision per class and mAP at IoU 0.5,
and the mask errors (FAR, FRR) on the faces that were found.

The protocol is PASCAL VOC's: detections are taken best score first; each one is matched to the
ground-truth box it overlaps most (IoU without VOC's +1 pixel, as
:func:`edgemask.core.ops.boxes.iou`). At IoU >= 0.5
that box makes it a true positive, unless the box was already taken (a duplicate: false positive) or is
*ignored* (``mask_weared_incorrect``, VOC ``difficult``): then the detection is neither hit nor miss, and
the ignored box is never a miss either. AP is the all-point interpolated area under the precision-recall
curve (VOC 2010 and later); mAP is the mean over ``LABELS``.

Per class, a detection's class is the label edgemask gave it and a ground-truth box's class its VOC name
(``with_mask`` is ``mask``, ``without_mask`` is ``no_mask``). A ``mask_weared_incorrect`` face belongs to
neither: it is ignored for every class, so whatever a detection on it is called, it is neither hit nor
miss. It is half a mask, and either label is defensible; scoring it as one would move the overall numbers
with a labelling choice rather than with the detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgemask.core.ops.boxes import iou_matrix
from edgemask.evaluation.metrics import classification_metrics
from edgemask.labels import IGNORE, LABELS

TP, FP, IGNORED = 1, 0, -1
"""Outcome of one detection."""
SIZE_BINS = (
    ("<16", 0.0, 16.0),
    ("16-32", 16.0, 32.0),
    ("32-64", 32.0, 64.0),
    (">=64", 64.0, float("inf")),
)
"""Face-size bins by ground-truth box width in image pixels: ``low <= width < high``."""


def match_detections(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignored: np.ndarray,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """VOC matching of one image. Returns, in the detections' own order, each one's outcome (``TP``,
    ``FP`` or ``IGNORED``) and the index of the ground-truth box it took (-1 when none)."""
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_ignored = np.asarray(gt_ignored, dtype=bool).ravel()
    outcome = np.full(len(det_boxes), FP, dtype=np.int64)
    taken_by = np.full(len(det_boxes), -1, dtype=np.int64)
    if len(det_boxes) == 0 or len(gt_ignored) == 0:
        return outcome, taken_by
    overlaps = iou_matrix(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_ignored), dtype=bool)
    for d in np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable"):
        g = int(np.argmax(overlaps[d]))
        if overlaps[d, g] < iou_threshold:
            continue
        if gt_ignored[g]:
            outcome[d] = IGNORED
        elif not taken[g]:
            taken[g] = True
            outcome[d], taken_by[d] = TP, g
    return outcome, taken_by


def precision_recall(
    scores: np.ndarray, is_tp: np.ndarray, n_positives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection, best score first (ignored detections left out)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(is_tp, dtype=bool)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / n_positives if n_positives else np.full(len(tp), np.nan)
    precision = tp / np.maximum(tp + fp, 1)
    return recall, precision


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point AP: area under the precision envelope (best precision at any higher recall)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def recall_by_size(
    widths: np.ndarray, found: np.ndarray, bins: Sequence[tuple[str, float, float]] = SIZE_BINS
) -> dict[str, dict]:
    """``{bin: {"recall", "faces"}}``: the share of the faces of each width bin that were found."""
    widths = np.asarray(widths, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    out = {}
    for name, low, high in bins:
        in_bin = (widths >= low) & (widths < high)
        out[name] = {"recall": _ratio(found[in_bin].sum(), in_bin.sum()), "faces": int(in_bin.sum())}
    return out


def class_rates(hits: np.ndarray, n_positives: int) -> dict:
    """Recall and precision of one class at the operating point, from the outcome of each detection given
    that label (ignored ones left out): every reported detection counts, whatever its score."""
    hits = np.asarray(hits, dtype=bool)
    tp = int(hits.sum())
    return {
        "recall": _ratio(tp, n_positives),
        "precision": _ratio(tp, len(hits)),
        "true_positives": tp,
        "detections": len(hits),
        "faces": int(n_positives),
    }


@dataclass
class DetectionEvaluator:
    """Accumulates images with :meth:`add`; :meth:`summary` gives every number, :meth:`pr_curves` the
    per-class curves.

    Face level (recall, precision, FAR/FRR) ignores the predicted class and orders detections by the
    detector's face score; AP per class orders that class's detections by their ranking score (the
    caller's choice, e.g. face score × class probability).
    """

    labels: Sequence[str] = LABELS
    iou_threshold: float = 0.5
    images: int = 0
    gt_widths: list[float] = field(default_factory=list)
    gt_found: list[bool] = field(default_factory=list)
    gt_classes: list[int] = field(default_factory=list)
    ignored_gt: int = 0
    face_outcomes: list[int] = field(default_factory=list)
    found_true: list[int] = field(default_factory=list)
    found_pred: list[int] = field(default_factory=list)
    class_scores: dict[int, list[float]] = field(default_factory=dict)
    class_hits: dict[int, list[bool]] = field(default_factory=dict)
    class_positives: dict[int, int] = field(default_factory=dict)

    def add(
        self,
        gt_boxes: np.ndarray,
        gt_labels: np.ndarray,
        det_boxes: np.ndarray,
        det_labels: np.ndarray,
        det_scores: np.ndarray,
        det_face_scores: np.ndarray | None = None,
    ) -> None:
        """One image. ``gt_labels``/``det_labels`` index ``labels`` (``IGNORE`` for ignored ground truth);
        ``det_scores`` rank detections for AP, ``det_face_scores`` (default: the same) for face level."""
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        gt_labels = np.asarray(gt_labels, dtype=np.int64).ravel()
        det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
        det_labels = np.asarray(det_labels, dtype=np.int64).ravel()
        det_scores = np.asarray(det_scores, dtype=np.float64).ravel()
        face_scores = det_scores if det_face_scores is None else np.asarray(det_face_scores).ravel()
        if not (len(gt_boxes) == len(gt_labels) and len(det_boxes) == len(det_labels) == len(det_scores)):
            raise ValueError("boxes, labels and scores must have the same length")
        ignored = gt_labels == IGNORE
        self.images += 1
        self.ignored_gt += int(ignored.sum())

        outcome, taken_by = match_detections(det_boxes, face_scores, gt_boxes, ignored, self.iou_threshold)
        found = np.zeros(len(gt_boxes), dtype=bool)
        found[taken_by[taken_by >= 0]] = True
        self.gt_widths.extend((gt_boxes[~ignored, 2] - gt_boxes[~ignored, 0]).tolist())
        self.gt_found.extend(found[~ignored].tolist())
        self.gt_classes.extend(gt_labels[~ignored].tolist())
        self.face_outcomes.extend(outcome.tolist())
        hit = outcome == TP
        self.found_true.extend(gt_labels[taken_by[hit]].tolist())
        self.found_pred.extend(det_labels[hit].tolist())

        for c in range(len(self.labels)):
            keep_gt = (gt_labels == c) | ignored
            mine = det_labels == c
            outcome_c, _ = match_detections(
                det_boxes[mine], det_scores[mine], gt_boxes[keep_gt], ignored[keep_gt], self.iou_threshold
            )
            counted = outcome_c != IGNORED
            self.class_scores.setdefault(c, []).extend(det_scores[mine][counted].tolist())
            self.class_hits.setdefault(c, []).extend((outcome_c[counted] == TP).tolist())
            self.class_positives[c] = self.class_positives.get(c, 0) + int((gt_labels == c).sum())

    def pr_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{label: (recall, precision)}``, best score first."""
        return {
            name: precision_recall(
                np.asarray(self.class_scores.get(c, [])),
                np.asarray(self.class_hits.get(c, []), dtype=bool),
                self.class_positives.get(c, 0),
            )
            for c, name in enumerate(self.labels)
        }

    def summary(self) -> dict:
        """JSON-ready numbers; NaN where there is nothing to count."""
        widths = np.asarray(self.gt_widths)
        found = np.asarray(self.gt_found, dtype=bool)
        outcomes = np.asarray(self.face_outcomes)
        tp, fp = int((outcomes == TP).sum()), int((outcomes == FP).sum())
        classes = np.asarray(self.gt_classes, dtype=np.int64)
        by_class = {
            name: {
                "recall": _ratio(found[classes == c].sum(), (classes == c).sum()),
                "faces": int((classes == c).sum()),
            }
            for c, name in enumerate(self.labels)
        }
        ap = {
            name: average_precision(*curve) if self.class_positives.get(c) else float("nan")
            for c, (name, curve) in enumerate(self.pr_curves().items())
        }
        mask_errors = classification_metrics(self.found_true, self.found_pred)
        return {
            "images": self.images,
            "faces": len(found),
            "ignored_faces": self.ignored_gt,
            "detections": len(outcomes),
            "recall": _ratio(found.sum(), len(found)),
            "recall_by_size": recall_by_size(widths, found),
            "recall_by_class": by_class,
            "recall_by_class_and_size": {
                name: recall_by_size(widths[classes == c], found[classes == c])
                for c, name in enumerate(self.labels)
            },
            "precision": _ratio(tp, tp + fp),
            "per_class": {
                name: class_rates(np.asarray(self.class_hits.get(c, [])), self.class_positives.get(c, 0))
                for c, name in enumerate(self.labels)
            },
            "ap": ap,
            "map": float(np.mean(list(ap.values()))),
            "found_faces": {k: mask_errors[k] for k in ("n", "accuracy", "far", "frr", "confusion")},
        }
