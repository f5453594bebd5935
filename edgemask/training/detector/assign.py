"""Which grid cells learn which face: YuNet's training targets in numpy.

The assigner is SimOTA (YOLOX's, as libfacedetection.train trains YuNet): a face's candidate cells are
those whose centre lies inside the face box or within ``radius`` strides of its centre; each candidate
costs ``cls + 3 · -log IoU`` (plus a large penalty unless it is inside both regions), and the face takes
its ``k`` cheapest candidates (its own: a cell near another face only is not one), ``k`` being the sum
of its 10 best IoUs (at least 1). A cell claimed by two faces goes to the cheaper one. The predictions
that price the candidates are the frozen source model's (the teacher's), not the student's: they come
free with the teacher pass that distils the landmarks, and they keep the assignment steady while the
student moves.

Cells are YuNet's: the decoding origin of cell ``[col, row]`` is its top-left corner ``[col, row] · stride``
(:func:`edgemask.core.ops.yunet.decode_boxes`); like libfacedetection.train, assignment measures from the
cell's centre, half a stride further.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemask.core.ops.boxes import iou_matrix
from edgemask.core.ops.yunet import grid_cells

CANDIDATE_IOUS = 10
"""How many of a face's best IoUs sum to its dynamic ``k`` (SimOTA's ``candidate_topk``)."""
OUTSIDE_COST = 1e5
EPS = 1e-8


@dataclass(frozen=True)
class Priors:
    """Every cell of every stride of one input size, strides in order, cells row-major within each."""

    cells: np.ndarray  # (N, 2) [col, row]
    strides: np.ndarray  # (N,)

    @property
    def centres(self) -> np.ndarray:
        """``(N, 2)`` cell centres in input pixels, where assignment measures from."""
        return (self.cells + 0.5) * self.strides[:, None]

    def __len__(self) -> int:
        return len(self.strides)


def priors_for(height: int, width: int, strides: tuple[int, ...]) -> Priors:
    """The cells of a padded ``height``×``width`` input, in the order the heads' outputs concatenate."""
    cells = [grid_cells(height, width, s) for s in strides]
    per_cell = [np.full(len(c), s, np.float32) for c, s in zip(cells, strides, strict=True)]
    return Priors(np.concatenate(cells), np.concatenate(per_cell))


def candidate_regions(priors: Priors, faces: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(in_box, in_centre)``, each ``(faces, cells)``: the cell centre lies inside the face box, or
    within ``radius`` strides of the face's centre (a square, as in YOLOX)."""
    c = priors.centres
    in_box = np.all(
        (c[None, :, :] > faces[:, None, :2]) & (c[None, :, :] < faces[:, None, 2:]),
        axis=-1,
    )
    face_centre = (faces[:, :2] + faces[:, 2:]) / 2
    reach = radius * priors.strides[None, :, None]
    in_centre = np.all(np.abs(c[None, :, :] - face_centre[:, None, :]) < reach, axis=-1)
    return in_box, in_centre


def simota(
    priors: Priors, pred_boxes: np.ndarray, pred_scores: np.ndarray, faces: np.ndarray, radius: float = 2.5
) -> tuple[np.ndarray, np.ndarray]:
    """``(face, iou)`` per cell: the face index it learns (-1: background) and its predicted box's IoU
    with that face. ``pred_boxes`` ``(N, 4)`` and ``pred_scores`` ``(N,)`` price the candidates."""
    n = len(priors)
    face_of = np.full(n, -1, np.int64)
    iou_of = np.zeros(n, np.float64)
    if len(faces) == 0:
        return face_of, iou_of
    in_box, in_centre = candidate_regions(priors, faces, radius)
    candidate = (in_box | in_centre).any(axis=0)
    idx = np.flatnonzero(candidate)
    if len(idx) == 0:
        return face_of, iou_of
    ious = iou_matrix(faces, pred_boxes[idx])  # (F, C)
    p = np.clip(pred_scores[idx], EPS, 1 - EPS)[None, :]
    # Binary cross-entropy of the predicted score against the IoU it would be trained towards.
    cls_cost = -(ious * np.log(p) + (1 - ious) * np.log(1 - p))
    inside_both = in_box[:, idx] & in_centre[:, idx]
    own = in_box[:, idx] | in_centre[:, idx]
    cost = cls_cost + 3.0 * -np.log(ious + EPS) + OUTSIDE_COST * ~inside_both
    cost = np.where(own, cost, np.inf)
    top = np.sort(np.where(own, ious, 0.0), axis=1)[:, ::-1][:, :CANDIDATE_IOUS]
    ks = np.minimum(np.maximum(top.sum(axis=1).astype(np.int64), 1), own.sum(axis=1))
    claims = np.zeros_like(cost, dtype=bool)
    for f, k in enumerate(ks):
        claims[f, np.argsort(cost[f], kind="stable")[:k]] = True
    claimed = claims.any(axis=0)
    cheapest = np.argmin(np.where(claims, cost, np.inf), axis=0)
    cells = idx[claimed]
    face_of[cells] = cheapest[claimed]
    iou_of[cells] = ious[cheapest[claimed], np.flatnonzero(claimed)]
    return face_of, iou_of


def covered_share(small: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(len(small),)`` the largest share of each box's area inside one of ``faces``."""
    lt = np.maximum(small[:, None, :2], faces[None, :, :2])
    rb = np.minimum(small[:, None, 2:], faces[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = np.prod(np.clip(small[:, 2:] - small[:, :2], 0, None), axis=-1)
    return (inter / np.maximum(area, EPS)[:, None]).max(axis=1)


def unlabelled_small_faces(
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    faces: np.ndarray,
    reference_side: float,
    score: float = 0.5,
    smaller_than: float = 0.5,
    overlap: float = 0.3,
) -> np.ndarray:
    """``(N,)`` cells to leave out of the background loss: the teacher is confident (>= ``score``) of a
    face there that is much smaller (side < ``smaller_than`` × ``reference_side``, the scene's smallest
    labelled face) and lies outside every labelled face (less than ``overlap`` of it inside one). Scenes
    leave many tiny background faces unlabelled; a confident small find there is more likely one of them
    than a false face, so it is neither taught nor punished. A small find on a labelled face (an eye, a
    mask) is still punished."""
    sides = np.sqrt(np.prod(np.clip(pred_boxes[:, 2:] - pred_boxes[:, :2], 0, None), axis=-1))
    small = (pred_scores >= score) & (sides < smaller_than * reference_side)
    if len(faces) and small.any():
        small[small] = covered_share(pred_boxes[small], faces) < overlap
    return small


@dataclass(frozen=True)
class Targets:
    """One image's dense targets, one row per cell (see :mod:`edgemask.training.detector.loss`)."""

    positive: np.ndarray  # (N,) float 0/1
    boxes: np.ndarray  # (N, 4) the face each positive cell learns, x1y1x2y2 input pixels
    obj_weight: np.ndarray  # (N,) 0 where an unlabelled small face is ignored
    landmarks: np.ndarray  # (N, 10) the teacher's raw landmark outputs
    landmark_weight: np.ndarray  # (N,) 1 on positives whose teacher box fits the face (IoU >= 0.5)


def image_targets(
    priors: Priors,
    teacher_boxes: np.ndarray,
    teacher_scores: np.ndarray,
    teacher_landmarks: np.ndarray,
    faces: np.ndarray,
    reference_side: float,
    radius: float = 2.5,
) -> Targets:
    """SimOTA positives, their faces, the ignored background cells and the distilled landmarks."""
    face_of, iou_of = simota(priors, teacher_boxes, teacher_scores, faces, radius)
    positive = face_of >= 0
    boxes = np.zeros((len(priors), 4), np.float32)
    boxes[positive] = faces[face_of[positive]]
    ignored = unlabelled_small_faces(teacher_boxes, teacher_scores, faces, reference_side) & ~positive
    return Targets(
        positive=positive.astype(np.float32),
        boxes=boxes,
        obj_weight=(~ignored).astype(np.float32),
        landmarks=teacher_landmarks.astype(np.float32),
        landmark_weight=(positive & (iou_of >= 0.5)).astype(np.float32),
    )
