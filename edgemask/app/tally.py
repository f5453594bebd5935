"""The counts of one run, kept in one place: the loop adds to them, the final summary and the live view's
HTTP threads read them (under one short lock)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from edgemask.core.pipeline import Face, Timings

STAGES = ("detect", "classify", "total")


@dataclass(frozen=True)
class TallyFigures:
    """A consistent copy of the counts at one moment."""

    frames: int
    faces: dict[str, int]
    skipped: int
    stage_ms: dict[str, float]


class Tally:
    """Frames processed, faces by label, skipped inputs by reason, and milliseconds summed per stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames = 0
        self.faces: Counter = Counter()
        self.skipped: dict[str, list[str]] = defaultdict(list)
        self.stage_ms = dict.fromkeys(STAGES, 0.0)

    def frame(self, faces: Sequence[Face], timings: Timings) -> None:
        with self._lock:
            self.frames += 1
            self.faces.update(face.label for face in faces)
            for stage in STAGES:
                self.stage_ms[stage] += getattr(timings, stage)

    def skip(self, name: str, reason: str) -> None:
        with self._lock:
            self.skipped[reason].append(name)

    def figures(self) -> TallyFigures:
        with self._lock:
            return TallyFigures(
                self.frames,
                dict(self.faces),
                sum(len(names) for names in self.skipped.values()),
                dict(self.stage_ms),
            )
