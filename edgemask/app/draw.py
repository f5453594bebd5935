"""Annotating a frame for people: a box per face coloured by label, the label and its score (a tracked
face: its person's id and the label its track votes for), the five landmarks where the detector gives
them, and the processing rate. Sizes scale with the image so labels
stay legible on 320 px and 4K frames alike."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgemask.core.pipeline import Face

COLORS = {"mask": (60, 180, 40), "no_mask": (40, 40, 220)}
"""BGR: green for masked, red for unmasked; other labels get grey."""
OTHER_COLOR = (160, 160, 160)
LANDMARK_COLOR = (0, 220, 255)
"""BGR yellow: eyes, nose tip and mouth corners stand out on both box colours."""
FONT = cv2.FONT_HERSHEY_SIMPLEX


def line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def put_label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    """``text`` on a filled background whose bottom-left corner is ``(x, y)``, moved inside the image."""
    scale = max(0.4, max(image.shape[:2]) / 1200)
    thickness = line_width(image)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x = min(max(0, x), max(0, image.shape[1] - tw))
    y = min(max(th + base, y), image.shape[0])
    cv2.rectangle(image, (x, y - th - base), (x + tw, y), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - base), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def annotate(image: np.ndarray, faces: Sequence[Face], fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with every face's box, ``label score``, and ``fps`` in the top-left corner."""
    out = image.copy()
    width = line_width(out)
    for face in faces:
        color = COLORS.get(face.track_label or face.label, OTHER_COLOR)
        x1, y1, x2, y2 = face.box
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, width)
        for x, y in face.landmarks or ():
            radius = max(1, min(width, (x2 - x1) // 20))
            cv2.circle(out, (round(x), round(y)), radius, LANDMARK_COLOR, cv2.FILLED)
        put_label(out, caption(face), x1, y1 - 1, color)
    if fps is not None:
        put_label(out, f"{fps:.1f} FPS", 0, 0, (0, 0, 0))
    return out


def caption(face: Face) -> str:
    """``mask 0.93``, or for a tracked face ``#7 mask 0.99`` (its track's vote)."""
    if face.track is None:
        return f"{face.label} {face.score:.2f}"
    return f"#{face.track} {face.track_label} {face.track_score or 0.0:.2f}"
