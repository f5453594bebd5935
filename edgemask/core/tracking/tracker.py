"""Face tracks across the frames of one video: which detection is which person.

Each frame, every track's box is predicted (:mod:`.motion`), then detections are matched to tracks in
ByteTrack's order (:mod:`.association`): confident detections to confirmed tracks, low-score detections to
the confirmed tracks still unmatched that were seen in the last frame (a face half hidden or blurred), then
the remaining confident detections to tentative tracks. A confident detection left over starts a tentative
track; it becomes a person (a public id) after ``confirm_hits`` frames in a row. A confirmed track survives
``lost_frames`` frames without a match (about a second of occlusion), then ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edgemask.core.tracking.association import Matches, match_subsets, overlaps
from edgemask.core.tracking.motion import MotionModel, to_boxes, to_state

NO_TRACK = -1
"""Id (and key) of a detection that belongs to no track, or of a track not yet confirmed."""
LOST_SECONDS = 1.0
"""How long a confirmed track waits for its face to come back."""


@dataclass(frozen=True)
class TrackerOptions:
    """``high_score``: detections at or above it start tracks and are matched first; lower ones only keep
    tracks alive. ``min_overlap``: the least buffered IoU (boxes grown by ``buffer`` per side) of a match;
    a track unseen for n frames looks ``n * lost_growth`` wider still, as its predicted place grows less
    certain (the camera may pan on while a face is hidden). 0.05 rather than 0.1: a lost track that widens
    fast can take a neighbour's face (seed-0 sequences: ID switches per person 0.16 -> 0.09)."""

    high_score: float = 0.6
    min_overlap: float = 0.2
    buffer: float = 0.5
    lost_growth: float = 0.05
    confirm_hits: int = 3
    lost_frames: int = 30
    motion: MotionModel = field(default_factory=MotionModel)

    def for_fps(self, fps: float | None) -> TrackerOptions:
        """The same options with the track buffer set to :data:`LOST_SECONDS` at ``fps`` frames a second."""
        if not fps or fps <= 0:
            return self
        return replace(self, lost_frames=max(1, round(fps * LOST_SECONDS)))


@dataclass(frozen=True)
class TrackUpdate:
    """Per detection of the frame: ``keys`` (the internal, never reused key of its track, tentative or
    not) and ``ids`` (its person's public id, :data:`NO_TRACK` until confirmed); ``ended``: keys of the
    tracks that ended this frame."""

    keys: np.ndarray
    ids: np.ndarray
    ended: np.ndarray


class Tracker:
    """Tracks of one sequence; ``reset()`` ends them all (a camera reset, a frame of another size).

    Public ids count up from 1 and are never reused within the tracker's life, resets included.
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._next_key = 0
        self._next_id = 1
        self._clear()

    def _clear(self) -> None:
        self._state = np.zeros((0, 4))
        self._velocity = np.zeros((0, 4))
        self._keys = np.zeros(0, np.int64)
        self._ids = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int64)
        self._misses = np.zeros(0, np.int64)

    @property
    def people(self) -> int:
        """Tracks confirmed so far: the persons seen."""
        return self._next_id - 1

    def reset(self) -> np.ndarray:
        """End every track; returns their keys."""
        ended = self._keys.copy()
        self._clear()
        return ended

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> TrackUpdate:
        """Match one frame's ``(N, 4)`` boxes ``[x1, y1, x2, y2]`` and ``(N,)`` face scores to tracks."""
        opt = self.options
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        predicted = opt.motion.predict(self._state, self._velocity)
        track_buffer = opt.buffer + opt.lost_growth * self._misses
        matches = self._associate(overlaps(to_boxes(predicted), boxes, track_buffer), scores)
        tracks, detections = matches.pairs[:, 0], matches.pairs[:, 1]

        velocity = opt.motion.coast(self._velocity)
        predicted[tracks], velocity[tracks] = opt.motion.correct(
            predicted[tracks], self._velocity[tracks], to_state(boxes[detections])
        )
        self._state, self._velocity = predicted, velocity
        self._hits[tracks] += 1
        self._misses += 1
        self._misses[tracks] = 0

        confirmed = self._ids != NO_TRACK
        keep = np.where(confirmed, self._misses <= opt.lost_frames, self._misses == 0)
        ended = self._keys[~keep]
        keys = np.full(len(boxes), NO_TRACK, np.int64)
        keys[detections] = self._keys[tracks]
        self._take(keep)

        starts = matches.detections[scores[matches.detections] >= opt.high_score]
        keys[starts] = self._start(boxes[starts])
        self._confirm(self._hits >= opt.confirm_hits)
        ids = np.full(len(boxes), NO_TRACK, np.int64)
        known = keys != NO_TRACK
        ids[known] = self._ids[np.searchsorted(self._keys, keys[known])]
        return TrackUpdate(keys, ids, ended)

    def _associate(self, similarity: np.ndarray, scores: np.ndarray) -> Matches:
        opt = self.options
        confirmed = self._ids != NO_TRACK
        high = np.flatnonzero(scores >= opt.high_score)
        low = np.flatnonzero(scores < opt.high_score)
        first = match_subsets(similarity, np.flatnonzero(confirmed), high, opt.min_overlap)
        seen_last = first.tracks[self._misses[first.tracks] == 0]
        second = match_subsets(similarity, seen_last, low, opt.min_overlap)
        third = match_subsets(similarity, np.flatnonzero(~confirmed), first.detections, opt.min_overlap)
        pairs = np.concatenate([first.pairs, second.pairs, third.pairs])
        unmatched_tracks = np.setdiff1d(np.arange(len(self._keys)), pairs[:, 0])
        return Matches(pairs, unmatched_tracks, np.concatenate([third.detections, second.detections]))

    def _confirm(self, ready: np.ndarray) -> None:
        new = ready & (self._ids == NO_TRACK)
        count = int(new.sum())
        self._ids[new] = np.arange(self._next_id, self._next_id + count)
        self._next_id += count

    def _take(self, keep: np.ndarray) -> None:
        self._state, self._velocity = self._state[keep], self._velocity[keep]
        self._keys, self._ids = self._keys[keep], self._ids[keep]
        self._hits, self._misses = self._hits[keep], self._misses[keep]

    def _start(self, boxes: np.ndarray) -> np.ndarray:
        keys = np.arange(self._next_key, self._next_key + len(boxes), dtype=np.int64)
        self._next_key += len(boxes)
        self._state = np.concatenate([self._state, to_state(boxes)])
        self._velocity = np.concatenate([self._velocity, np.zeros((len(boxes), 4))])
        self._keys = np.concatenate([self._keys, keys])
        self._ids = np.concatenate([self._ids, np.full(len(boxes), NO_TRACK, np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(len(boxes), np.int64)])
        self._misses = np.concatenate([self._misses, np.zeros(len(boxes), np.int64)])
        return keys
