"""Constant-velocity motion of face boxes: where each track should be in the next frame.

A steady-state Kalman filter (an alpha-beta filter) on the box centre and size, vectorized over tracks.
With fixed process and measurement noise, a Kalman filter's gain converges to constants within a few
frames; the alpha-beta filter *is* that converged filter, without a covariance matrix per track. It is
cheap enough for a Pi, easy to test by hand, and its velocity decays while a track is unseen, so a person
hidden behind an occluder is looked for near where they vanished rather than thrown across the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionModel:
    """Gains of the filter. ``position_gain`` (alpha): how far a measurement pulls the predicted box;
    ``velocity_gain`` (beta): how much of the surprise becomes velocity; ``coast_decay``: velocity kept
    per frame while a track is not seen. Low gains: a shaking camera and jittery boxes of small faces
    make single measurements poor evidence (chosen on benchmarks/tracking.py's seed-0 sequences)."""

    position_gain: float = 0.3
    velocity_gain: float = 0.05
    coast_decay: float = 0.8

    def predict(self, state: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """The next frame's ``(T, 4)`` states ``[cx, cy, w, h]``; sizes never go below one pixel."""
        moved = state + velocity
        moved[:, 2:] = np.maximum(moved[:, 2:], 1.0)
        return moved

    def correct(
        self, predicted: np.ndarray, velocity: np.ndarray, measured: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """States and velocities of tracks after seeing ``measured`` ``(T, 4)`` states."""
        surprise = measured - predicted
        return predicted + self.position_gain * surprise, velocity + self.velocity_gain * surprise

    def coast(self, velocity: np.ndarray) -> np.ndarray:
        """Velocities of tracks that were not seen this frame."""
        return velocity * self.coast_decay


def to_state(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners ``[x1, y1, x2, y2]`` → states ``[cx, cy, w, h]``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + size / 2, size], axis=1)


def to_boxes(state: np.ndarray) -> np.ndarray:
    """States ``[cx, cy, w, h]`` → corners ``[x1, y1, x2, y2]``."""
    half = state[:, 2:] / 2
    return np.concatenate([state[:, :2] - half, state[:, :2] + half], axis=1)
