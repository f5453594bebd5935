"""An on-screen window, when OpenCV can open one.

``opencv-python-headless`` (edgemask's default dependency, right for devices without a screen) has no
GUI at all, and a GUI build without a display aborts the process inside Qt or GTK. Both are detected
before a window is attempted, so the user gets a sentence instead of a crash.
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})


def gui_problem() -> str | None:
    """Why no window can be shown here, or None if one can."""
    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if "GUI:" in line), "")
    if gui.upper() in ("", "NONE", "NO"):
        return (
            "this OpenCV build has no GUI support (opencv-python-headless), so --show cannot open a "
            "window; use --save or --json, or replace it: pip uninstall opencv-python-headless && "
            "pip install opencv-python"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display to show a window on ($DISPLAY is not set); use --save or --json"
    return None


class Window:
    """One named window; :meth:`show` returns False once the user pressed q/Esc or closed it."""

    def __init__(self, title: str = "edgemask") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray, wait_ms: int = 1) -> bool:
        """Display ``image``; ``wait_ms`` 0 waits for a key (still images), 1 keeps video flowing."""
        cv2.imshow(self.title, image)
        key = cv2.waitKey(wait_ms) & 0xFF
        if key in QUIT_KEYS:
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.title)
