"""Where frames come from: image files (one file, a folder, a glob), video files, live cameras and streams.

Two reading disciplines, chosen by the kind of source and visible as ``Source.live``:

- files (images and videos): every frame, in order, none dropped, because results must cover the input;
- live (camera index, ``picam``, device path, rtsp/http URL): the newest frame only, through
  :class:`~edgemask.app.camera.LatestFrameReader`, because results must stay current.

Bad files never raise here: they come out as :class:`Skipped` items with a reason, so a batch goes on.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edgemask.app.camera import Backoff, LatestFrameReader, open_capture
from edgemask.core.imageio import IMAGE_SUFFIXES, ImageError, decode_image
from edgemask.core.ops.image import to_bgr8

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp"})
GLOB_CHARS = frozenset("*?[")
DEFAULT_BACKOFF = Backoff()
PICAMERA_SPEC = re.compile(r"picam(:\d+)?", re.IGNORECASE)

ZERO_BYTE = "zero-byte file"
NOT_AN_IMAGE = "not an image file"
UNREADABLE = "unreadable file"
UNDECODABLE = "not a decodable image (corrupt, or too large)"
ALREADY_DONE = "already done"


class SourceError(ValueError):
    """A ``--source`` that names nothing usable."""


@dataclass(frozen=True)
class Frame:
    """One image or video frame. ``name`` is what results report as the source (a path, or a stream
    with any password hidden); ``key`` identifies it stably inside the input (a path relative to the
    input folder), for output file names and the sort manifest; ``digest`` is the SHA-256 of an image
    file's bytes (None for video and live frames)."""

    image: np.ndarray
    index: int
    name: str
    key: str
    digest: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An input that yielded no image, and why."""

    name: str
    reason: str
    index: int


class Source:
    """Iterate to get :class:`Frame` and :class:`Skipped` items; ``close`` releases devices."""

    live = False
    kind = "source"
    total: int | None = None
    fps: float | None = None
    end_reason: str | None = None
    name = ""

    @staticmethod
    def should_stop() -> bool:
        """Replaced by the caller to end a wait early (a live source checks it while polling)."""
        return False

    def __iter__(self) -> Iterator[Frame | Skipped]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageFiles(Source):
    """Still images, each read once: its bytes are hashed (``Frame.digest``) and decoded upright as BGR
    uint8 from the same buffer. Keys are paths relative to ``root``. ``done(digest, key)`` true marks
    images already handled, which are skipped before decoding. Frames are numbered in the order they
    come out; skipped inputs keep their position in the listing."""

    kind = "images"

    def __init__(self, paths: list[Path], root: Path, done: Callable[[str, str], bool] | None = None) -> None:
        self.paths = paths
        self.root = root
        self.done = done
        self.total = len(paths)
        self.name = str(root)

    def key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def __iter__(self) -> Iterator[Frame | Skipped]:
        frames = 0
        for index, path in enumerate(self.paths):
            key = self.key(path)
            data, reason = read_bytes(path)
            if data is None:
                yield Skipped(str(path), reason, index)
                continue
            digest = hashlib.sha256(data).hexdigest()
            if self.done is not None and self.done(digest, key):
                yield Skipped(str(path), ALREADY_DONE, index)
                continue
            image, reason = decode(data, path)
            if image is None:
                yield Skipped(str(path), reason, index)
                continue
            yield Frame(image, frames, str(path), key, digest)
            frames += 1


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_bytes(path: Path) -> tuple[bytes | None, str]:
    """``(bytes, "")`` of an image file, or ``(None, reason)`` with one of this module's skip reasons."""
    if not is_image_name(path):
        return None, NOT_AN_IMAGE
    try:
        data = path.read_bytes()
    except OSError:
        return None, UNREADABLE
    return (data, "") if data else (None, ZERO_BYTE)


def decode(data: bytes, path: Path) -> tuple[np.ndarray | None, str]:
    """``(image, "")`` or ``(None, reason)``."""
    try:
        return decode_image(np.frombuffer(data, np.uint8), str(path)), ""
    except ImageError:
        return None, UNDECODABLE


class VideoFile(Source):
    """Every frame of a video file, in order: the consumer sets the pace and nothing is dropped."""

    kind = "video"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceError(f"{path}: cannot be opened as a video")
        self.total = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or None

    def __iter__(self) -> Iterator[Frame | Skipped]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok or image is None:
                break
            yield Frame(to_bgr8(image), index, self.name, self.path.name)
            index += 1
        if self.total and index < self.total:
            self.end_reason = f"video ended after {index} of {self.total} frames (truncated file?)"

    def close(self) -> None:
        self.capture.release()


class LiveStream(Source):
    """The newest frames of a camera or stream. Ends when reconnecting failed (see ``Backoff``) or when
    a read has blocked for ``stall_timeout`` seconds; ``end_reason`` says which."""

    live = True
    kind = "live"

    def __init__(
        self,
        spec: str,
        opener: Callable[[], Any],
        backoff: Backoff = DEFAULT_BACKOFF,
        stall_timeout: float = 10.0,
        sleep: Callable[[float], object] | None = None,
        poll: float = 0.1,
    ) -> None:
        self.name = redact_url(spec)
        capture = opener()
        get_property = getattr(capture, "get", None)  # OpenCV captures report a frame rate, Picamera2 not
        self.fps = (get_property(cv2.CAP_PROP_FPS) if get_property else 0.0) or None
        self.reader = LatestFrameReader(capture, opener, backoff, sleep)
        self.stall_timeout = stall_timeout
        self.poll = poll
        self.delivered = 0

    @property
    def dropped(self) -> int:
        """Frames read but never handed out because processing was busy."""
        return max(0, self.reader.frames_read - self.delivered)

    def __iter__(self) -> Iterator[Frame | Skipped]:
        self.reader.start()
        while True:
            item = self.reader.get(timeout=self.poll)
            if item is not None:
                self.delivered += 1
                yield Frame(item[1], item[0], self.name, self.name)
            elif self.should_stop():
                return
            elif self.reader.ended:
                self.end_reason = self.reader.end_reason
                return
            elif self.reader.blocked_for() > self.stall_timeout:
                self.end_reason = f"no frame for {self.stall_timeout:g} s (the device stopped answering)"
                return

    def close(self) -> None:
        self.reader.stop()


def redact_url(spec: str) -> str:
    """A stream URL fit for logs: ``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x``."""
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def is_live(spec: str) -> bool:
    """Camera index, ``picam[:N]``, a ``/dev/video*`` device or a stream URL."""
    return (
        spec.isdigit()
        or PICAMERA_SPEC.fullmatch(spec) is not None
        or spec.startswith("/dev/video")
        or urlsplit(spec).scheme.lower() in STREAM_SCHEMES
    )


def list_files(folder: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under ``folder`` (sorted; non-images too, so they can be reported), minus the
    ``exclude`` folders (outputs written inside the input must not be read back as inputs)."""
    excluded = [e.resolve() for e in exclude]
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(path.resolve().is_relative_to(e) for e in excluded):
            files.append(path)
    return files


def open_live(
    spec: str,
    backoff: Backoff = DEFAULT_BACKOFF,
    stall_timeout: float = 10.0,
    size: tuple[int, int] | None = None,
    picamera2_cls: Callable[..., Any] | None = None,
    sleep: Callable[[float], object] | None = None,
) -> LiveStream:
    """A camera or stream, opened now: raises :class:`~edgemask.app.camera.CameraError` if it cannot be."""
    return LiveStream(spec, lambda: open_capture(spec, size, picamera2_cls), backoff, stall_timeout, sleep)


def glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: ``raw/**/*.jpg`` → ``raw``."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path()


def open_source(
    spec: str,
    backoff: Backoff = DEFAULT_BACKOFF,
    stall_timeout: float = 10.0,
    size: tuple[int, int] | None = None,
    exclude: tuple[Path, ...] = (),
    done: Callable[[str, str], bool] | None = None,
) -> Source:
    """Pick the reader for ``spec``: live source, folder, image file, video file, or glob of images."""
    if is_live(spec):
        return open_live(spec, backoff, stall_timeout, size)
    path = Path(spec)
    if path.is_dir():
        return ImageFiles(list_files(path, exclude), path, done)
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return VideoFile(path)
        return ImageFiles([path], path.parent, done)
    if GLOB_CHARS & set(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not matches:
            raise SourceError(f"{spec}: no files match this pattern")
        return ImageFiles(matches, glob_base(spec), done)
    raise SourceError(f"{spec}: no such file or folder")
