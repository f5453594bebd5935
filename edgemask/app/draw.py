"""Annotating a frame for people: a box per face coloured by label, the label and its score (a tracked
face: its person's id and the label its track votes for), the five landmarks where the detector gives
them, and the processing rate. Sizes scale with the image so labels stay legible on 320 px and 4K frames
alike; where they go is :mod:`edgemask.app.labels_layout`."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgemask.app.labels_layout import Rect, counter_corner, place_labels
from edgemask.core.pipeline import Face

COLORS = {"mask": (60, 180, 40), "no_mask": (40, 40, 220)}
"""BGR: green for masked, red for unmasked; other labels get grey."""
OTHER_COLOR = (160, 160, 160)
LANDMARK_COLOR = (0, 220, 255)
"""BGR yellow: eyes, nose tip and mouth corners stand out on both box colours."""
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_TEXT_SCALE = 0.3
"""About 8 px high: still legible, and small enough for a crowd of faces on a 400 px picture."""


def line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def text_scale(image: np.ndarray) -> float:
    return max(MIN_TEXT_SCALE, max(image.shape[:2]) / 1200)


def label_size(image: np.ndarray, text: str) -> tuple[int, int]:
    """``(w, h)`` of ``text`` on its filled background at this picture's scale."""
    (tw, th), base = cv2.getTextSize(text, FONT, text_scale(image), line_width(image))
    return tw, th + base


def put_label(image: np.ndarray, text: str, spot: Rect, color: tuple[int, int, int]) -> None:
    """``text`` in white on a filled ``color`` background filling ``spot``."""
    base = cv2.getTextSize(text, FONT, text_scale(image), line_width(image))[1]
    cv2.rectangle(image, (spot.x1, spot.y1), (spot.x2 - 1, spot.y2 - 1), color, cv2.FILLED)
    org = (spot.x1, spot.y2 - base)
    cv2.putText(image, text, org, FONT, text_scale(image), (255, 255, 255), line_width(image), cv2.LINE_AA)


def annotate(image: np.ndarray, faces: Sequence[Face], fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with every face's box and ``label score`` (placed so labels stay readable in a
    crowd, :mod:`edgemask.app.labels_layout`), and ``fps`` in the corner that hides the fewest faces."""
    out = image.copy()
    width = line_width(out)
    picture = (out.shape[1], out.shape[0])
    for face in faces:
        x1, y1, x2, y2 = face.box
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour_of(face), width)
        for x, y in face.landmarks or ():
            radius = max(1, min(width, (x2 - x1) // 20))
            cv2.circle(out, (round(x), round(y)), radius, LANDMARK_COLOR, cv2.FILLED)
    texts = [caption(face) for face in faces]
    boxes = [face.box for face in faces]
    spots = place_labels(boxes, [label_size(out, t) for t in texts], picture)
    for face, text, spot in zip(faces, texts, spots, strict=True):
        put_label(out, text, spot, colour_of(face))
    if fps is not None:
        text = f"{fps:.1f} FPS"
        put_label(out, text, counter_corner(label_size(out, text), boxes, picture), (0, 0, 0))
    return out


def colour_of(face: Face) -> tuple[int, int, int]:
    """A tracked face is coloured by its person's label, a lone one by its own."""
    return COLORS.get(face.track_label or face.label, OTHER_COLOR)


def caption(face: Face) -> str:
    """``mask 0.93``, or for a tracked face ``#7 mask 0.99`` (its track's vote)."""
    if face.track is None:
        return f"{face.label} {face.score:.2f}"
    return f"#{face.track} {face.track_label} {face.track_score or 0.0:.2f}"
