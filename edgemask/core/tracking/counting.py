"""People crossing a counting line: a *segment*, not an infinite line, crossed in or out.

A track counts when the path of its box centre from one frame to the next crosses the segment; a path
that passes beyond either end does not. Direction: seen on screen, walking from ``(x1, y1)`` to
``(x2, y2)``, *in* crosses from the left-hand side to the right-hand side (down across a line drawn left
to right), *out* the other way. A person walking back and forth counts each crossing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

IN, OUT = "in", "out"


class CountLineError(ValueError):
    """A ``--count-line`` value that is not four numbers, a zero-length segment or one outside the frame."""


@dataclass(frozen=True)
class CountLine:
    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def parse(cls, text: str) -> CountLine:
        """``"X1,Y1,X2,Y2"`` in pixels."""
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(np.isfinite(values)):
            raise CountLineError(f"count line {text!r}: expected four numbers X1,Y1,X2,Y2 in pixels")
        line = cls(*values)
        if line.x1 == line.x2 and line.y1 == line.y2:
            raise CountLineError(f"count line {text!r}: both ends are the same point")
        return line

    def check_inside(self, width: int, height: int) -> None:
        """Both ends inside a ``width``×``height`` frame, or :class:`CountLineError`."""
        for x, y in ((self.x1, self.y1), (self.x2, self.y2)):
            if not (0 <= x <= width and 0 <= y <= height):
                raise CountLineError(f"count line end ({x:g}, {y:g}) is outside the {width}x{height} frame")

    def side(self, points: np.ndarray) -> np.ndarray:
        """``(N,)`` +1 on the right-hand side (on screen) of points ``(N, 2)``, -1 on the left, 0 on it."""
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        return np.sign(dx * (points[:, 1] - self.y1) - dy * (points[:, 0] - self.x1))


def crossings(line: CountLine, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``(N,)`` +1 (in), -1 (out) or 0 for paths ``start[i] → end[i]`` (points ``(N, 2)``).

    A point exactly on the line counts as its right-hand side, so a path that stops on the line and goes
    on counts once, not twice.
    """
    before = np.where(line.side(start) >= 0, 1, -1)
    after = np.where(line.side(end) >= 0, 1, -1)
    a = np.array([[line.x1, line.y1]])
    b = np.array([[line.x2, line.y2]])
    step = end - start
    ends_a = np.sign(step[:, 0] * (a[:, 1] - start[:, 1]) - step[:, 1] * (a[:, 0] - start[:, 0]))
    ends_b = np.sign(step[:, 0] * (b[:, 1] - start[:, 1]) - step[:, 1] * (b[:, 0] - start[:, 0]))
    within = ends_a * ends_b <= 0
    return np.where((before != after) & within, after, 0)


class LineCounter:
    """Crossings of one line by tracks (by their keys), counted by label and direction."""

    def __init__(self, line: CountLine) -> None:
        self.line = line
        self.counts: Counter[tuple[str, str]] = Counter()
        self._last: dict[int, np.ndarray] = {}

    def update(self, keys: np.ndarray, centres: np.ndarray, labels: list[str]) -> None:
        """Tracks ``keys`` are at ``centres`` ``(N, 2)`` with these labels in this frame."""
        seen = [i for i, key in enumerate(keys) if int(key) in self._last]
        if seen:
            start = np.stack([self._last[int(keys[i])] for i in seen])
            for i, sign in zip(seen, crossings(self.line, start, centres[seen]), strict=True):
                if sign:
                    self.counts[labels[i], IN if sign > 0 else OUT] += 1
        for key, centre in zip(keys, centres, strict=True):
            self._last[int(key)] = centre

    def forget(self, keys: np.ndarray) -> None:
        """Tracks that ended."""
        for key in keys:
            self._last.pop(int(key), None)
