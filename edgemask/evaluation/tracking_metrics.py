"""Scores of tracked faces against ground-truth persons: MOTA, IDF1 and ID switches from py-motmetrics,
and, per person, how often the label reported for them is right and how often it flips.

Both come from one matching, motmetrics' own (IoU ≥ 0.5, tracks kept matched across frames where they
still overlap), so a frame-by-frame run (hypothesis ids fresh every frame) and a tracked run are scored
alike: a person's reported label is the ``track_label`` of the face matched to them, else its ``label``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from edgemask.core.ops.boxes import iou_matrix
from edgemask.labels import SHORT

MATCH_IOU = 0.5
MATCHED_EVENTS = ("MATCH", "SWITCH")
"""motmetrics event types that pair a person with a hypothesis (once per frame and person)."""


@dataclass(frozen=True)
class FrameTruth:
    """One frame's persons (ids, ``(N, 4)`` corner boxes, VOC class names) and the faces reported in it
    (hypothesis ids, boxes, reported short labels)."""

    person_ids: np.ndarray
    person_boxes: np.ndarray
    classes: tuple[str, ...]
    face_ids: np.ndarray
    face_boxes: np.ndarray
    face_labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelScores:
    """Label figures over the persons of a known class (``mask_weared_incorrect`` left out)."""

    frames: int
    right: int
    people: int
    flipped_people: int
    flips: int

    @property
    def right_share(self) -> float:
        return self.right / self.frames if self.frames else float("nan")

    @property
    def steady_share(self) -> float:
        return 1 - self.flipped_people / self.people if self.people else float("nan")


def distances(persons: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """motmetrics' distance matrix, 1 - IoU, NaN (no match) below :data:`MATCH_IOU`: computed with the
    project's IoU, as motmetrics 1.4's own ``iou_matrix`` calls a function NumPy 2 removed."""
    overlap = iou_matrix(persons, faces)
    return np.where(overlap >= MATCH_IOU, 1.0 - overlap, np.nan)


def accumulate(frames: Iterable[FrameTruth]):
    """A motmetrics accumulator over the frames (motmetrics is imported here: a benchmark dependency)."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for f in frames:
        acc.update(f.person_ids.tolist(), f.face_ids.tolist(), distances(f.person_boxes, f.face_boxes))
    return acc


def mot_summary(acc) -> dict[str, float]:
    """MOTA, IDF1, ID switches, persons, and the recall of the faces reported (which bounds IDF1)."""
    import motmetrics as mm

    row = mm.metrics.create().compute(
        acc, metrics=["mota", "idf1", "num_switches", "num_unique_objects", "recall"], name="run"
    )
    values = {k: float(row[k].iloc[0]) for k in row.columns}
    people = values["num_unique_objects"]
    return {
        "mota": values["mota"],
        "recall": values["recall"],
        "idf1": values["idf1"],
        "id_switches": values["num_switches"],
        "people": people,
        "switches_per_person": values["num_switches"] / people if people else float("nan"),
    }


def label_scores(acc, frames: list[FrameTruth]) -> LabelScores:
    """Per person, the frames whose reported label matches their class, and the flips between them."""
    events = acc.mot_events
    matched = events[events["Type"].isin(MATCHED_EVENTS)]
    reported: dict[object, list[tuple[int, bool, str]]] = defaultdict(list)
    for (frame_id, _), person, face in zip(matched.index, matched["OId"], matched["HId"], strict=True):
        f = frames[int(frame_id)]
        truth = SHORT.get(f.classes[int(np.flatnonzero(f.person_ids == person)[0])])
        if truth is None:
            continue
        label = f.face_labels[int(np.flatnonzero(f.face_ids == face)[0])]
        reported[person].append((int(frame_id), label == truth, label))
    right = total = flipped = flips = 0
    for rows in reported.values():
        rows.sort()
        labels = [label for _, _, label in rows]
        changes = sum(a != b for a, b in pairwise(labels))
        right += sum(ok for _, ok, _ in rows)
        total += len(rows)
        flips += changes
        flipped += changes > 0
    return LabelScores(total, right, len(reported), flipped, flips)
