"""The outputs of the frame loop, one class each behind one small protocol, so the loop stays a loop and a
new output (a tracker's people counts, a counting line) is one more class.

A sink is handed every processed frame (:class:`Processed`) and every skipped input, is closed once at
the end (also after Ctrl-C or a failure, so videos are finalized and locks released), and gives lines for
the final summary. A sink that ends the run (the ``--show`` window closed by the user) raises
:class:`StopRun`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, TextIO

import numpy as np

from edgemask.app.display import Window
from edgemask.app.draw import annotate
from edgemask.app.liveview import LiveView
from edgemask.app.recording import ImageSaver, VideoSaver
from edgemask.app.sources import Frame, Skipped
from edgemask.core.pipeline import FrameResult


class StopRun(Exception):
    """Raised by a sink whose user asked to stop (closed the window)."""


@dataclass(frozen=True)
class Processed:
    """One frame with what the pipeline answered, the loop's smoothed frame rate, and the rate to draw on
    the picture (None for still photos, where a rate means nothing to the viewer)."""

    frame: Frame
    result: FrameResult
    fps: float | None
    shown_fps: float | None

    @cached_property
    def annotated(self) -> np.ndarray:
        """The frame with boxes, labels and the frame rate drawn: made once, shared by the sinks."""
        return annotate(self.frame.image, self.result.faces, self.shown_fps)


class Sink(Protocol):
    def write(self, item: Processed) -> None: ...

    def skipped(self, item: Skipped) -> None: ...

    def close(self) -> None: ...

    def summary(self) -> list[str]: ...


class BaseSink:
    """No-op defaults for :class:`Sink`: a sink overrides what it needs."""

    def write(self, item: Processed) -> None:
        """Handle one processed frame."""

    def skipped(self, item: Skipped) -> None:
        """Note an input that gave no frame."""

    def close(self) -> None:
        """Finish the output (called once, also after a failure)."""

    def summary(self) -> list[str]:
        return []


class JsonLinesSink(BaseSink):
    """``--json``: one object per processed frame on ``stream``, flushed at once so pipes see it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, item: Processed) -> None:
        frame, result = item.frame, item.result
        h, w = frame.image.shape[:2]
        record = {
            "source": frame.name,
            "frame": frame.index,
            "width": w,
            "height": h,
            "faces": [f.to_dict() for f in result.faces],
            "ms": result.timings.to_dict(),
        }
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


class SaveSink(BaseSink):
    """``--save``: annotated images into a folder or file, or frames into a video."""

    def __init__(self, saver: ImageSaver | VideoSaver) -> None:
        self.saver = saver

    def write(self, item: Processed) -> None:
        self.saver.write(item.frame, item.annotated)

    def close(self) -> None:
        self.saver.close()

    def summary(self) -> list[str]:
        return [self.saver.describe()]


class WindowSink(BaseSink):
    """``--show``: a window; q, Esc or closing it ends the run. Still photos wait for a key."""

    def __init__(self, window: Window, stills: bool) -> None:
        self.window = window
        self.wait_ms = 0 if stills else 1

    def write(self, item: Processed) -> None:
        if not self.window.show(item.annotated, self.wait_ms):
            raise StopRun

    def close(self) -> None:
        self.window.close()


class LiveSink(BaseSink):
    """``--serve``: hands each processed frame to the live view (annotated later, in its clients' threads)."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def write(self, item: Processed) -> None:
        self.view.publish(item.frame, item.result, item.fps, item.shown_fps)
