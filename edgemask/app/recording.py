"""Saving annotated results: still images into a folder (or one file), frames into a video file.

Nothing is overwritten (see ``edgemask.app.outfiles``). Videos are opened lazily at the first frame (its size
fixes the video's) and must be closed to be playable: callers close them in ``finally`` so Ctrl-C and
lost cameras still leave a finished file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgemask.app.outfiles import inside, remove_if_empty, reserve_new, safe_name, write_image_new
from edgemask.app.sources import Frame

IMAGE_OUT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class SaveError(ValueError):
    """A ``--save`` target that does not fit the source, or that cannot be written: one line, exit 2."""


def cannot_write(path: Path, error: OSError) -> SaveError:
    return SaveError(f"--save {path}: cannot write there ({error.strerror or error})")


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) now, so an unwritable ``--save`` fails before any frame."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        in_the_way = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if in_the_way is not None:
            raise SaveError(f"--save {folder}: {in_the_way} is a file, not a folder") from e
        raise cannot_write(folder, e) from e


class ImageSaver:
    """Annotated stills: into ``target`` itself (one image) or into the folder ``target``, named after the
    source's key (sanitized, so it cannot leave the folder)."""

    def __init__(self, target: Path, single_file: bool) -> None:
        self.target = target
        self.single_file = single_file
        self.written: list[Path] = []
        self.renamed = 0
        if not single_file and target.exists() and not target.is_dir():
            raise SaveError(f"--save {target}: exists and is not a folder")
        make_folder(target.parent if single_file else target)

    def path_for(self, frame: Frame) -> Path:
        if self.single_file:
            return self.target
        name = safe_name(frame.key)
        if Path(name).suffix.lower() not in IMAGE_OUT_SUFFIXES:
            name += ".jpg"
        return inside(self.target, name)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        wanted = self.path_for(frame)
        try:
            self.written.append(write_image_new(wanted, image))
        except OSError as e:
            raise cannot_write(wanted, e) from e
        self.renamed += self.written[-1] != wanted

    def close(self) -> None:
        """Stills are complete once written."""

    def describe(self) -> str:
        if self.single_file and self.written and self.written[0] != self.target:
            return f"saved {self.written[0]} ({self.target} exists and was left alone)"
        note = f", {self.renamed} under a numbered name as the name was taken" if self.renamed else ""
        where = self.written[0] if self.single_file and self.written else self.target
        return f"saved {len(self.written)} annotated image(s) to {where}{note}"


class VideoSaver:
    """Annotated frames into an ``.mp4`` (mp4v) or ``.avi`` (MJPG) file at ``fps``.

    With ``realtime`` (live sources, where frames are dropped while inference runs) each frame is
    repeated for the time it stayed current, so the video plays at the speed things happened; without
    it (video files) every frame is written exactly once.
    """

    def __init__(
        self, target: Path, fps: float, realtime: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.target = target
        self.fps = fps
        self.realtime = realtime
        self.clock = clock
        self.path: Path | None = None
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self.t0 = 0.0
        make_folder(target.parent)

    def _open(self, image: np.ndarray) -> None:
        try:
            self.path = reserve_new(self.target)
        except OSError as e:
            raise cannot_write(self.target, e) from e
        self.size = (image.shape[1], image.shape[0])
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.target.suffix.lower()])
        self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
        if not self.writer.isOpened():
            self.close()
            raise SaveError(f"{self.path}: OpenCV cannot write this video (codec not available)")
        self.t0 = self.clock()

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self.writer is None:
            self._open(image)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        copies = 1
        if self.realtime:
            due = int((self.clock() - self.t0) * self.fps) + 1
            copies = due - self.frames_written
        for _ in range(copies):
            self.writer.write(image)
            self.frames_written += 1

    def describe(self) -> str:
        if self.path is None:
            return f"no video saved to {self.target}: no frame was processed"
        return f"saved {self.path} ({self.frames_written} frames at {self.fps:g} fps)"

    def close(self) -> None:
        """Finalize the file (writes the index a player needs); drop it if no frame ever arrived."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.path is not None:
            remove_if_empty(self.path)


def make_saver(
    target: Path, source_kind: str, single_image: bool, fps: float | None
) -> ImageSaver | VideoSaver:
    """The saver that fits ``--save target`` for this kind of source, or a :class:`SaveError` saying why
    it does not fit."""
    suffix = target.suffix.lower()
    if source_kind in ("video", "live"):
        if suffix not in VIDEO_CODECS:
            raise SaveError(f"--save {target}: a video or camera is saved as a .mp4 or .avi file")
        if target.is_dir():
            raise SaveError(f"--save {target}: is a folder")
        return VideoSaver(target, fps or (25.0 if source_kind == "video" else 15.0), source_kind == "live")
    if suffix in VIDEO_CODECS:
        raise SaveError(f"--save {target}: images are saved as images; give a folder")
    if suffix in IMAGE_OUT_SUFFIXES:
        if not single_image:
            raise SaveError(f"--save {target}: several images are saved into a folder; give a folder")
        return ImageSaver(target, single_file=True)
    return ImageSaver(target, single_file=False)
