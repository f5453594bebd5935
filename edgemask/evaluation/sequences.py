"""Synthetic videos with ground-truth tracks, filmed from still VOC scenes by a virtual camera.

Each segment of a sequence films one scene: the camera window pans across it, zooms in and out and
shakes; the brightness drifts; a grey bar sweeps across the frame and hides the faces it covers. Segments
are joined by hard cuts, at one frame size, so a tracker sees a cut, not a reset. Ground truth follows
from the scene's boxes through the same affine map as the pixels: a person is one scene face, present in
the frames where at least half of their box is inside the frame and not behind the bar.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgemask.core.ops.boxes import box_area
from edgemask.evaluation.voc import Scene

FRAME_SIZE = (640, 480)
"""Width and height of every frame."""
VISIBLE_SHARE = 0.5
"""A face counts as present while at least this share of its box is in view and not hidden."""


@dataclass(frozen=True)
class Camera:
    """How the virtual camera moves over one segment of ``frames`` frames."""

    frames: int = 90
    view: float = 0.8
    """The window's height as a share of the scene's at the widest zoom."""
    zoom: float = 0.25
    """How much narrower the window gets at the deepest zoom."""
    pan: float = 0.3
    """The pan's travel as a share of the scene's width."""
    shake: float = 3.0
    """Frame-to-frame jitter, in output pixels."""
    brightness: float = 0.25
    """Largest relative brightness change."""
    bar_width: float = 0.08
    """The occluder's width as a share of the frame's."""


@dataclass(frozen=True)
class Frame:
    """One synthetic frame: the pixels and the ground truth of the persons present in it."""

    image: np.ndarray
    person_ids: np.ndarray
    boxes: np.ndarray
    classes: tuple[str, ...]


def window_at(t: float, scene_hw: tuple[int, int], camera: Camera) -> np.ndarray:
    """The scene window ``[x1, y1, x2, y2]`` filmed at ``t`` in [0, 1], 4:3 like the frame."""
    h, w = scene_hw
    scale = camera.view * (1.0 - camera.zoom * np.sin(np.pi * t))
    win_h = h * scale
    win_w = win_h * FRAME_SIZE[0] / FRAME_SIZE[1]
    cx = w / 2 + camera.pan * w * (t - 0.5)
    cy = h / 2
    return np.array([cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2])


def window_map(window: np.ndarray) -> np.ndarray:
    """The 2×3 affine map from scene pixels to frame pixels that films ``window``."""
    sx = FRAME_SIZE[0] / (window[2] - window[0])
    sy = FRAME_SIZE[1] / (window[3] - window[1])
    return np.array([[sx, 0.0, -window[0] * sx], [0.0, sy, -window[1] * sy]])


def map_boxes(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes through a scale-and-shift affine map."""
    scale = np.array([affine[0, 0], affine[1, 1], affine[0, 0], affine[1, 1]])
    shift = np.array([affine[0, 2], affine[1, 2], affine[0, 2], affine[1, 2]])
    return boxes * scale + shift


def bar_at(t: float, camera: Camera) -> tuple[float, float]:
    """The occluder's ``(x1, x2)`` in frame pixels: it crosses the frame once per segment."""
    width = camera.bar_width * FRAME_SIZE[0]
    left = -width + t * (FRAME_SIZE[0] + width)
    return left, left + width


def visible_share(boxes: np.ndarray, bar: tuple[float, float]) -> np.ndarray:
    """Share of each box inside the frame and not behind the bar."""
    inside = np.clip(boxes, 0, [FRAME_SIZE[0], FRAME_SIZE[1], FRAME_SIZE[0], FRAME_SIZE[1]])
    area = box_area(boxes)
    hidden_w = np.maximum(np.minimum(inside[:, 2], bar[1]) - np.maximum(inside[:, 0], bar[0]), 0)
    seen = box_area(inside) - hidden_w * np.maximum(inside[:, 3] - inside[:, 1], 0)
    return np.divide(seen, area, out=np.zeros_like(area), where=area > 0)


def film(scene: Scene, camera: Camera, first_id: int, rng: np.random.Generator) -> Iterator[Frame]:
    """The frames of one segment; persons are numbered from ``first_id`` in the scene's box order."""
    jitter = np.zeros(4)
    phase = rng.uniform(0, 2 * np.pi)
    for k in range(camera.frames):
        t = k / max(camera.frames - 1, 1)
        jitter = 0.5 * jitter + np.repeat(rng.normal(0, camera.shake, 2), 2)[[0, 2, 1, 3]]
        window = window_at(t, scene.image.shape[:2], camera)
        window = window + jitter * (window[2] - window[0]) / FRAME_SIZE[0]
        affine = window_map(window)
        image = cv2.warpAffine(scene.image, affine, FRAME_SIZE, flags=cv2.INTER_LINEAR)
        gain = 1.0 + camera.brightness * np.sin(2 * np.pi * t + phase)
        image = cv2.convertScaleAbs(image, alpha=gain)
        bar = bar_at(t, camera)
        image[:, max(int(bar[0]), 0) : max(int(bar[1]), 0)] = 128
        boxes = map_boxes(scene.boxes, affine)
        present = np.flatnonzero(visible_share(boxes, bar) >= VISIBLE_SHARE)
        clipped = np.clip(boxes[present], 0, [FRAME_SIZE[0], FRAME_SIZE[1], FRAME_SIZE[0], FRAME_SIZE[1]])
        yield Frame(image, first_id + present, clipped, tuple(scene.classes[i] for i in present))


def sequence(scenes: Sequence[Scene], camera: Camera, seed: int) -> Iterator[Frame]:
    """Segments of ``scenes`` joined by hard cuts; person ids unique over the sequence."""
    rng = np.random.default_rng(seed)
    first_id = 0
    for scene in scenes:
        yield from film(scene, camera, first_id, rng)
        first_id += len(scene.boxes)
