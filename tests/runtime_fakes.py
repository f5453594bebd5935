"""Stand-ins for the runtime tests: a pipeline whose answers follow from the pixels, captures that fail on
cue, and video frames that carry their own index so order and completeness can be checked."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from edgemask.core.ops.boxes import face_crop_boxes
from edgemask.core.pipeline import Face, FrameResult, Timings

CODE_BITS = 8
CODE_CELL = 16


class FakePipeline:
    """A :class:`~edgemask.core.pipeline.FramePipeline` whose answers follow from the pixels: two faces
    per image, the centre half labelled by brightness and an 8 px one at the top-left border (none with
    ``faceless``), each with its crop box cut by the runtime's own rule. Records every image it saw."""

    margin = 0.1

    def __init__(
        self, fail_on: int | None = None, interrupt_on: int | None = None, faceless: bool = False
    ) -> None:
        self.skipped_small = 0
        self.faceless = faceless
        self.seen: list[np.ndarray] = []
        self.fail_on = fail_on
        self.interrupt_on = interrupt_on

    def infer(self, image: np.ndarray) -> FrameResult:
        n = len(self.seen)
        self.seen.append(image)
        if n == self.interrupt_on:
            raise KeyboardInterrupt
        if n == self.fail_on:
            raise RuntimeError("model exploded")
        timings = Timings(detect=2.0, classify=1.0, total=3.0)
        if self.faceless:
            self.skipped_small += 1  # as if the detector found only a face too small to classify
            return FrameResult([], timings)
        return FrameResult(self.faces(image), timings)

    def faces(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        label = "mask" if image.mean() > 100 else "no_mask"
        found = [
            ((w // 4, h // 4, 3 * w // 4, 3 * h // 4), label, 0.9, 0.8),
            ((0, 0, min(w, 8), min(h, 8)), "no_mask", 0.6, 0.5),
        ]
        crops = face_crop_boxes(np.array([f[0] for f in found]), self.margin, w, h)
        return [
            Face(box, label, score, face_score, crop=tuple(int(v) for v in c))
            for (box, label, score, face_score), c in zip(found, crops, strict=True)
        ]


def stamp_index(image: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` as a row of black/white cells into the bottom-left corner, where annotations do not
    reach (survives JPEG/MJPG)."""
    out = image.copy()
    for bit in range(CODE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        out[-CODE_CELL:, bit * CODE_CELL : (bit + 1) * CODE_CELL] = value
    return out


def read_index(image: np.ndarray) -> int:
    rows = image[-CODE_CELL + 4 : -4]
    cells = [rows[:, b * CODE_CELL + 4 : (b + 1) * CODE_CELL - 4].mean() for b in range(CODE_BITS)]
    return sum(1 << b for b, v in enumerate(cells) if v > 127)


def write_video(
    path: Path, images: list[np.ndarray], size: tuple[int, int] = (320, 240), fps: float = 10
) -> None:
    """An MJPG video whose frame k is ``images[k]`` resized and stamped with k."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for k, image in enumerate(images):
        writer.write(stamp_index(cv2.resize(image, size), k))
    writer.release()


class FakeCapture:
    """A camera that delivers ``frames`` stamped frames (numbered from ``start``), then fails;
    ``period`` seconds apart, like a real camera's frame rate. ``block`` makes the failure a read that
    never returns (until ``unblock``)."""

    def __init__(
        self, frames: int, start: int = 0, period: float = 0.0, block: bool = False, shape=(48, 160, 3)
    ) -> None:
        self.remaining = frames
        self.next = start
        self.period = period
        self.block = block
        self.shape = shape
        self.released = False
        self.unblock = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.remaining <= 0:
            if self.block:
                self.unblock.wait()
            return False, None
        if self.period:
            time.sleep(self.period)
        self.remaining -= 1
        image = stamp_index(np.full(self.shape, 90, np.uint8), self.next)
        self.next += 1
        return True, image

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    """The parts of ``picamera2.Picamera2`` edgemask uses; frames come as RGB888 (B, G, R in memory)."""

    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int = 0, fail_after: int | None = None) -> None:
        self.camera_num = camera_num
        self.fail_after = fail_after
        self.config: dict | None = None
        self.started = False
        self.closed = False
        self.captured = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict) -> dict:
        return {"main": dict(main)}

    def configure(self, config: dict) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, stream: str = "main") -> np.ndarray:
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("camera frontend timed out")
        w, h = self.config[stream]["size"]
        image = stamp_index(np.zeros((h, w, 3), np.uint8), self.captured)
        self.captured += 1
        return image

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True
