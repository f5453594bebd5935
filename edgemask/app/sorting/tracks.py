"""``--sort-into`` on a video, a stream or a camera: one crop per person, not one per face and frame.

A tracked run sees each person in hundreds of frames. Each confirmed track keeps its best view so far
(:func:`view_quality`: large, sharp and confidently labelled) and files it once, when the track ends or the
run does, under the label the track voted for last. The manifest row names the track and the frames it
spans, so a reviewer can find the person in the video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgemask.app.sinks import BaseSink, Processed
from edgemask.app.sorting.crops import SortedFace, SortedImage, TrackSpan, crop_rows, track_crop_name
from edgemask.app.sorting.manifest import SortFolder
from edgemask.core.pipeline import Face
from edgemask.core.tracked import TrackedPipeline

SHARPNESS_SIDE = 64
"""Crops are compared for sharpness at this side (the classifier's input): detail at one scale, so an
enlarged, blurred view of a small face does not win on size alone."""


def sharpness(pixels: np.ndarray) -> float:
    """Variance of the Laplacian of the crop in grey at :data:`SHARPNESS_SIDE` px: low for a blurred view."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    small = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small.astype(np.float64), cv2.CV_64F).var())


def view_quality(face: Face, pixels: np.ndarray) -> float:
    """How good a view of a person this crop is: its area × its sharpness × the frame's confidence in the
    label the track votes for (one number, so no weights to tune)."""
    agrees = face.track_label is None or face.label == face.track_label
    confidence = face.score if agrees else 1.0 - face.score
    return float(pixels.shape[0] * pixels.shape[1]) * sharpness(pixels) * confidence


@dataclass
class Person:
    """A track's best view so far and the frames it spans."""

    view: SortedFace
    quality: float
    frame: int
    first: int
    last: int = 0
    label: str = ""
    """The label the track voted for in its last frame, and its score."""
    score: float = 0.0


class TrackSortSink(BaseSink):
    """Files one crop per person of a tracked run into ``folder`` (which it closes)."""

    def __init__(self, folder: SortFolder, margin: float, tracking: TrackedPipeline) -> None:
        self.folder = folder
        self.margin = margin
        self.tracking = tracking
        self.people: dict[int, Person] = {}
        self.filed = 0
        self.source: tuple[str, str] | None = None

    def write(self, item: Processed) -> None:
        frame = item.frame
        self.source = (os.path.abspath(frame.name), frame.key)
        for track in self.tracking.ended:
            self._file(track)
        faces = item.result.faces
        views = crop_rows(self.source[0], frame.key, "", frame.image, faces, self.margin).faces
        for face, view in zip(faces, views, strict=True):
            if face.track is None:
                continue
            quality = view_quality(face, view.pixels)
            person = self.people.setdefault(face.track, Person(view, quality, frame.index, frame.index))
            if quality > person.quality:
                person.view, person.quality, person.frame = view, quality, frame.index
            person.last = frame.index
            person.label, person.score = face.track_label or face.label, face.track_score or face.score

    def _file(self, track: int) -> None:
        person = self.people.pop(track, None)
        if person is None or self.source is None:
            return
        view = replace(
            person.view,
            label=person.label,
            score=person.score,
            name=track_crop_name(self.source[1], track),
            span=TrackSpan(track, person.frame, person.first, person.last),
        )
        self.folder.record(SortedImage(self.source[0], self.source[1], "", (view,)))
        self.filed += 1

    def close(self) -> None:
        try:
            for track in sorted(self.people):
                self._file(track)
            if self.filed == 0 and self.source is not None:
                self.folder.record(SortedImage(*self.source, "", ()))
        finally:
            self.folder.close()

    def summary(self) -> list[str]:
        return [f"{self.filed} people, one crop each, and the manifest in {self.folder.out_dir}"]
