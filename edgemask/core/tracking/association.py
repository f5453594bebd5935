"""Which detection belongs to which track: an overlap score and greedy matching, in ByteTrack's two stages.

Faces in a frame rarely overlap one another, so the best-overlap-first greedy match almost always equals
the optimal assignment; it needs no solver (``lap``, scipy) on a Pi. Overlaps are IoUs of boxes grown by
``buffer`` of their size on every side (a "buffered IoU"): a 20-pixel face that moves 10 pixels between
frames shares little of its own box, but much of a box half again as large.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemask.core.ops.boxes import expand_box, pairwise_iou


@dataclass(frozen=True)
class Matches:
    """``pairs`` ``(K, 2)`` rows ``[track, detection]``; the rows and columns left over, ascending."""

    pairs: np.ndarray
    tracks: np.ndarray
    detections: np.ndarray


def overlaps(tracks: np.ndarray, detections: np.ndarray, buffer: np.ndarray | float) -> np.ndarray:
    """``(T, D)`` IoUs of ``[x1, y1, x2, y2]`` boxes, both of a pair grown by ``buffer`` of their size per
    side: one margin for all, or one per track (``(T,)``)."""
    tracks = np.asarray(tracks, dtype=np.float64).reshape(-1, 1, 4)
    detections = np.asarray(detections, dtype=np.float64).reshape(1, -1, 4)
    margin = np.reshape(np.asarray(buffer, dtype=np.float64), (-1, 1, 1))
    return pairwise_iou(expand_box(tracks, margin), expand_box(detections, margin))


def greedy_match(similarity: np.ndarray, min_similarity: float) -> Matches:
    """Pairs taken best first while both sides are free and the similarity reaches ``min_similarity``."""
    n_tracks, n_detections = similarity.shape
    rows, cols = np.nonzero(similarity >= min_similarity)
    order = np.argsort(-similarity[rows, cols], kind="stable")
    free_track = np.ones(n_tracks, bool)
    free_detection = np.ones(n_detections, bool)
    pairs = []
    for t, d in zip(rows[order], cols[order], strict=True):
        if free_track[t] and free_detection[d]:
            free_track[t] = free_detection[d] = False
            pairs.append((t, d))
    pairs_array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return Matches(pairs_array, np.flatnonzero(free_track), np.flatnonzero(free_detection))


def match_subsets(
    similarity: np.ndarray, track_rows: np.ndarray, detection_cols: np.ndarray, min_similarity: float
) -> Matches:
    """:func:`greedy_match` of some tracks with some detections; indices are those of ``similarity``."""
    found = greedy_match(similarity[np.ix_(track_rows, detection_cols)], min_similarity)
    pairs = np.stack([track_rows[found.pairs[:, 0]], detection_cols[found.pairs[:, 1]]], axis=1)
    return Matches(pairs.reshape(-1, 2), track_rows[found.tracks], detection_cols[found.detections])
