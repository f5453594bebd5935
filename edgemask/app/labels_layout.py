"""Where the labels and the frame-rate counter go on an annotated picture, as pure geometry: in a crowd,
labels drawn blindly above their boxes cover each other and the counter covers a face.

A label goes above its box, inside the box's top where there is no room above; if that spot is taken
by a label already placed it tries the same row aligned to the box's right edge, then below the box,
then inside its bottom, and takes the spot it overlaps least. Every spot is moved inside the picture.
The counter goes in the corner that covers the fewest faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]
"""``(x1, y1, x2, y2)`` in pixels, ``x2`` and ``y2`` exclusive."""


@dataclass(frozen=True)
class Rect:
    """A half-open pixel rectangle ``[x1, x2) × [y1, y2)``."""

    x1: int
    y1: int
    x2: int
    y2: int

    def overlap(self, other: Rect | Box) -> int:
        """Pixels shared with ``other``."""
        ox1, oy1, ox2, oy2 = other.as_box() if isinstance(other, Rect) else other
        w = min(self.x2, ox2) - max(self.x1, ox1)
        h = min(self.y2, oy2) - max(self.y1, oy1)
        return max(0, w) * max(0, h)

    def as_box(self) -> Box:
        return (self.x1, self.y1, self.x2, self.y2)


def inside_picture(x: int, y: int, size: tuple[int, int], picture: tuple[int, int]) -> Rect:
    """A ``size`` ``(w, h)`` rectangle with its top-left corner near ``(x, y)``, moved into the
    ``picture`` ``(w, h)``; one larger than the picture is pinned to its top-left corner."""
    (w, h), (pw, ph) = size, picture
    x = max(0, min(x, pw - w))
    y = max(0, min(y, ph - h))
    return Rect(x, y, x + w, y + h)


def label_spots(box: Box, size: tuple[int, int], picture: tuple[int, int]) -> list[Rect]:
    """Where the label of ``box`` may go, best first: above the box (inside its top when there is no
    room above), then below it, then inside its bottom; each starting at the box's left edge, then
    ending at its right edge."""
    x1, y1, x2, y2 = box
    w, h = size
    first = y1 - h if y1 >= h else y1
    return [inside_picture(x, y, size, picture) for y in (first, y2, y2 - h) for x in (x1, x2 - w)]


def place_labels(
    boxes: Sequence[Box], sizes: Sequence[tuple[int, int]], picture: tuple[int, int]
) -> list[Rect]:
    """One rectangle per label (``sizes[i]`` ``(w, h)`` belongs to ``boxes[i]``), in order: the first of
    its :func:`label_spots` that overlaps no label placed before it, else the one that overlaps least."""
    placed: list[Rect] = []
    for box, size in zip(boxes, sizes, strict=True):
        spots = label_spots(box, size, picture)
        placed.append(min(spots, key=lambda spot: sum(spot.overlap(p) for p in placed)))
    return placed


def counter_corner(size: tuple[int, int], faces: Sequence[Box], picture: tuple[int, int]) -> Rect:
    """The corner for a ``size`` ``(w, h)`` counter that covers the fewest faces (then the least face
    area), the top-left one when it does no worse."""
    (w, h), (pw, ph) = size, picture
    corners = [inside_picture(x, y, size, picture) for y in (0, ph - h) for x in (0, pw - w)]
    return min(
        corners,
        key=lambda c: (sum(c.overlap(f) > 0 for f in faces), sum(c.overlap(f) for f in faces)),
    )
