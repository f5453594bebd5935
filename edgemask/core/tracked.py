"""A pipeline for video: faces tracked across frames, one steady label per person, fewer classifier calls.

:class:`TrackedPipeline` answers the :class:`~edgemask.core.pipeline.FramePipeline` contract on top of a
:class:`~edgemask.core.pipeline.Pipeline`: it detects, matches the faces to tracks, classifies only the
faces whose track needs a new look (:func:`~edgemask.core.tracking.votes.needs_look`) and fills each
face's ``track``, ``track_label`` and ``track_score``. A face not looked at this frame keeps the label and
score of its track's last look. As in ByteTrack, the detector runs below the file's threshold
(:data:`LOW_SCORE_SHARE`) and only faces a little above it (:data:`LEAD_SCORE_MARGIN`) lead the matching
and start tracks; the fainter ones keep existing tracks alive and are reported only when they do.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from edgemask.core.ops.boxes import box_area
from edgemask.core.pipeline import Detected, Face, FrameResult, Pipeline, Timings, as_bgr
from edgemask.core.tracking.counting import CountLine, LineCounter
from edgemask.core.tracking.tracker import NO_TRACK, Tracker, TrackerOptions, TrackUpdate
from edgemask.core.tracking.votes import FIRST, Vote, VoteRule, needs_look, observe
from edgemask.labels import LABELS, short_name

FIRST_NAME = short_name(LABELS[FIRST])
"""The reported name of the label the votes count log-odds for."""
LOW_SCORE_SHARE = 0.6
"""The detector's threshold while tracking, as a share of the file's own: the low-score rescue band."""
LEAD_SCORE_MARGIN = 0.1
"""A face leads the matching and may start a track at the file's threshold plus this (ByteTrack's
new-track offset); fainter faces only extend tracks (fewer tracks from false faces, fewer ID switches)."""


@dataclass(frozen=True)
class Look:
    """A track's last answer from the classifier and its vote."""

    vote: Vote
    label: str
    score: float

    @property
    def track_label(self) -> str:
        return short_name(LABELS[self.vote.label])


class TrackedPipeline:
    """Tracks, votes and counts over the frames of one source. A frame of another size (a stream that
    reconnected) or :meth:`reset` ends every track cleanly; people are counted when their track is
    confirmed, by the label their track voted for."""

    def __init__(
        self,
        pipeline: Pipeline,
        fps: float | None = None,
        count_line: CountLine | None = None,
        tracker: TrackerOptions | None = None,
        votes: VoteRule | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.margin = pipeline.margin
        detector = pipeline.detector
        lead = min(detector.conf_threshold + LEAD_SCORE_MARGIN, 1.0)
        options = replace(tracker or TrackerOptions(), high_score=lead)
        detector.conf_threshold = detector.conf_threshold * LOW_SCORE_SHARE
        self.tracker = Tracker(options.for_fps(fps))
        self.rule = votes or VoteRule()
        self.counter = LineCounter(count_line) if count_line else None
        self.classified = 0
        self.ended: list[int] = []
        """Ids of the persons whose tracks ended in the last :meth:`infer` (seen last in an earlier frame)."""
        self._ended_people: Counter[str] = Counter()
        self._looks: dict[int, Look] = {}
        self._ids: dict[int, int] = {}
        self._frame = 0
        self._frame_hw: tuple[int, int] | None = None

    def people(self) -> Counter[str]:
        """Persons seen so far (confirmed tracks), by the label their track votes for."""
        live = Counter(self._looks[key].track_label for key in self._ids if key in self._looks)
        return self._ended_people + live

    def crossings(self) -> Counter[tuple[str, str]]:
        """Count-line crossings by ``(label, "in" | "out")``; empty without a line."""
        return Counter(self.counter.counts) if self.counter else Counter()

    def reset(self) -> None:
        """End every track (a camera reset); ids keep counting up."""
        self._end(self.tracker.reset())

    def infer(self, image: np.ndarray) -> FrameResult:
        image = as_bgr(image)
        self.ended = []
        if self._frame_hw is not None and image.shape[:2] != self._frame_hw:
            self.reset()
        self._frame_hw = image.shape[:2]
        t0 = time.perf_counter()
        detected = self.pipeline.detect(image)
        t1 = time.perf_counter()
        update = self.tracker.update(
            np.array([d.box for d in detected], np.float64).reshape(-1, 4),
            np.array([d.face_score for d in detected], np.float64),
        )
        self._end(update.ended)
        reported = np.flatnonzero(update.keys != NO_TRACK)
        looked = [i for i in reported if self._needs_look(int(update.keys[i]), detected[i])]
        t2 = time.perf_counter()
        fresh = dict(zip(looked, self._classify(image, [detected[i] for i in looked]), strict=True))
        t3 = time.perf_counter()
        faces = [self._face(detected[i], update, i, fresh.get(i)) for i in reported]
        self._count(faces, update.keys[reported])
        self._frame += 1
        t4 = time.perf_counter()
        return FrameResult(faces, Timings((t1 - t0) * 1e3, (t3 - t2) * 1e3, (t4 - t0) * 1e3))

    def _classify(self, image: np.ndarray, detected: list[Detected]) -> list[Face]:
        self.classified += len(detected)
        return self.pipeline.classify(image, detected) if detected else []

    def _needs_look(self, key: int, face: Detected) -> bool:
        look = self._looks.get(key)
        return look is None or needs_look(look.vote, self._frame, area(face), self.rule)

    def _face(self, detected: Detected, update: TrackUpdate, i: int, fresh: Face | None) -> Face:
        key, track = int(update.keys[i]), int(update.ids[i])
        if fresh is not None:
            self._looks[key] = self._observe(self._looks.get(key), fresh, area(detected))
        look = self._looks[key]
        face = Face(
            detected.box, look.label, look.score, detected.face_score, detected.landmarks, detected.crop
        )
        if track == NO_TRACK:
            return face
        self._ids[key] = track
        return replace(face, track=track, track_label=look.track_label, track_score=look.vote.score)

    def _observe(self, look: Look | None, fresh: Face, face_area: float) -> Look:
        p_first = fresh.score if fresh.label == FIRST_NAME else 1.0 - fresh.score
        vote = observe(look.vote if look else Vote(), p_first, self._frame, face_area, self.rule)
        return Look(vote, fresh.label, fresh.score)

    def _count(self, faces: list[Face], keys: np.ndarray) -> None:
        if self.counter is None:
            return
        tracked = [i for i, face in enumerate(faces) if face.track is not None]
        boxes = np.array([faces[i].box for i in tracked], np.float64).reshape(-1, 4)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        self.counter.update(keys[tracked], centres, [faces[i].track_label or "" for i in tracked])

    def _end(self, keys: np.ndarray) -> None:
        for key in keys.tolist():
            look = self._looks.pop(key, None)
            track = self._ids.pop(key, None)
            if track is not None:
                self.ended.append(track)
            if track is not None and look is not None:
                self._ended_people[look.track_label] += 1
        if self.counter:
            self.counter.forget(keys)


def area(face: Detected) -> float:
    return float(box_area(np.asarray(face.box, np.float64)))
