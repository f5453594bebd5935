"""Live captures (OpenCV cameras and streams, the Raspberry Pi camera through Picamera2) and the reader
thread that keeps only the newest frame.

Inference is usually slower than a camera. Reading frames in the processing loop would let them queue
up (in OpenCV's buffer or the driver's), so results would lag further and further behind reality. The
:class:`LatestFrameReader` instead drains the capture in its own thread and hands the consumer the newest
frame only; frames in between are dropped on purpose. It also reconnects with bounded back-off when
frames stop coming. Video *files* must not drop frames and do not use it (see ``edgemask.app.sources``).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from edgemask.core.ops.image import to_bgr8

PICAMERA_PREFIX = "picam"
PICAMERA_DEFAULT_SIZE = (640, 480)
PICAMERA_INSTALL_HINT = (
    "Picamera2 is not installed. On Raspberry Pi OS: sudo apt install python3-picamera2, and create the "
    "virtual environment with --system-site-packages so it can see it"
)


class CameraError(RuntimeError):
    """A camera or stream that cannot be opened."""


class Capture(Protocol):
    """What the reader needs from a capture; ``cv2.VideoCapture`` has exactly this shape."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class PicameraCapture:
    """The Raspberry Pi camera behind the ``cv2.VideoCapture`` interface.

    ``picamera2_cls`` is ``picamera2.Picamera2`` (imported only when a Pi camera is asked for) or a
    stand-in with the same methods. Frames are configured as ``RGB888``, which Picamera2 lays out in
    memory as B, G, R: exactly OpenCV's order.
    """

    def __init__(
        self,
        camera_num: int = 0,
        size: tuple[int, int] | None = None,
        picamera2_cls: Callable[..., Any] | None = None,
    ) -> None:
        cls = picamera2_cls or load_picamera2()
        try:
            self.camera = cls(camera_num)
            config = self.camera.create_video_configuration(
                main={"size": tuple(size or PICAMERA_DEFAULT_SIZE), "format": "RGB888"}
            )
            self.camera.configure(config)
            self.camera.start()
        except Exception as e:  # Picamera2 raises bare RuntimeError/IndexError/OSError for a missing camera
            raise CameraError(f"Pi camera {camera_num} cannot be opened: {e}") from e

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            return True, self.camera.capture_array("main")
        except Exception:  # any capture failure is a lost frame; the reader reconnects
            return False, None

    def release(self) -> None:
        for step in (self.camera.stop, self.camera.close):
            try:
                step()
            except Exception:  # closing a camera that already failed must not mask the first error
                continue


def load_picamera2() -> Callable[..., Any]:
    """``picamera2.Picamera2``, imported on demand so nothing else needs it."""
    try:
        return importlib.import_module("picamera2").Picamera2
    except ImportError as e:
        raise CameraError(PICAMERA_INSTALL_HINT) from e


def parse_picamera(spec: str) -> int | None:
    """``"picam"`` → 0, ``"picam:1"`` → 1, anything else → None."""
    name, _, num = spec.partition(":")
    if name.lower() != PICAMERA_PREFIX:
        return None
    if num and not num.isdigit():
        raise CameraError(f"{spec!r}: expected picam or picam:N")
    return int(num or 0)


@contextmanager
def opencv_errors_only() -> Iterator[None]:
    """OpenCV's own log at ERROR level while a capture opens: its ``[ WARN:...]`` lines for a missing
    camera would print before (and say less than) edgemask's one-line error."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def open_opencv(target: int | str, size: tuple[int, int] | None = None) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` for a camera index, a device path or a stream URL."""
    with opencv_errors_only():
        cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        if isinstance(target, int):
            raise CameraError(
                f"camera {target} cannot be opened (connected, and not in use by another program? "
                "ls /dev/video* lists cameras; a Raspberry Pi camera module is --camera picam)"
            )
        raise CameraError(f"stream {target} cannot be opened")
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    if size is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    return cap


def open_capture(
    spec: str, size: tuple[int, int] | None = None, picamera2_cls: Callable[..., Any] | None = None
) -> Capture:
    """Open a live source: ``"0"`` (camera index), ``"picam"``/``"picam:N"``, a device path or a URL.
    ``size`` is ``(width, height)``. Raises :class:`CameraError` when it cannot be opened."""
    picam = parse_picamera(spec)
    if picam is not None:
        return PicameraCapture(picam, size, picamera2_cls)
    return open_opencv(int(spec) if spec.isdigit() else spec, size)


@dataclass(frozen=True)
class Backoff:
    """Reconnect policy: up to ``retries`` attempts, waiting ``delay``·``factor``^k seconds (at most
    ``max_delay``) before attempt k. Frames coming again reset the count."""

    retries: int = 5
    delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0

    def wait_before(self, attempt: int) -> float:
        return min(self.delay * self.factor**attempt, self.max_delay)


class LatestFrameReader:
    """Reads a live capture in a daemon thread, keeping only the newest frame.

    ``get`` returns ``(sequence_number, image)`` of a frame newer than the last one returned; sequence
    numbers count every frame read, so gaps are frames dropped because the consumer was busy. When the
    capture fails, the thread reopens it through ``reopen`` with :class:`Backoff`; after the last
    attempt it ends and ``end_reason`` says why. ``sleep`` is injectable so tests need not wait.
    """

    def __init__(
        self,
        capture: Capture,
        reopen: Callable[[], Capture],
        backoff: Backoff | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capture: Capture | None = capture
        self._reopen = reopen
        self.backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._clock = clock
        self._read_since: float | None = None
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray] | None = None
        self._taken = -1
        self._done = False
        self.frames_read = 0
        self.reconnects = 0
        self.session_start = 0
        """Index of the first frame read since the capture was last reopened (0: never reopened)."""
        self.end_reason: str | None = None
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="edgemask-frame-reader", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def _read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        self._read_since = self._clock()
        try:
            ok, image = self._capture.read()
            return to_bgr8(image) if ok and image is not None and image.size else None
        except Exception:  # a driver error or an unusable frame format is one more lost frame
            return None
        finally:
            self._read_since = None

    def _reconnect(self, attempt: int) -> None:
        self._release()
        self._sleep(self.backoff.wait_before(attempt))
        if self._stop.is_set():
            return
        self.reconnects += 1
        try:
            self._capture = self._reopen()
            self.session_start = self.frames_read
        except Exception as e:  # cv2 and Picamera2 raise assorted errors; each is one failed attempt
            self._capture = None
            self.last_error = str(e)

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is not None:
                    failures = 0
                    with self._cond:
                        self._latest = (self.frames_read, image)
                        self.frames_read += 1
                        self._cond.notify_all()
                    continue
                if failures >= self.backoff.retries:
                    detail = f" (last error: {self.last_error})" if self.last_error else ""
                    self.end_reason = f"no frames after {failures} reconnect attempts{detail}"
                    break
                self._reconnect(failures)
                failures += 1
        finally:
            self._release()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _release(self) -> None:
        if self._capture is not None:
            capture, self._capture = self._capture, None
            try:
                capture.release()
            except Exception:  # releasing a device that already failed must not kill the reader
                return

    def _fresh(self) -> bool:
        return self._latest is not None and self._latest[0] > self._taken

    def get(self, timeout: float | None = None) -> tuple[int, np.ndarray] | None:
        """The newest unseen frame; waits up to ``timeout`` s. None when the reader ended or timed out
        (tell them apart with :attr:`ended`)."""
        with self._cond:
            self._cond.wait_for(lambda: self._fresh() or self._done, timeout)
            if not self._fresh():
                return None
            self._taken = self._latest[0]
            return self._latest

    def blocked_for(self) -> float:
        """Seconds the current ``read`` has been waiting for the device (0 when not inside a read:
        back-off waits and reopening are not stalls)."""
        since = self._read_since
        return 0.0 if since is None else self._clock() - since

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._done and not self._fresh()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to finish and wait a little; a read stuck in a driver is left to die with the
        process (the thread is a daemon)."""
        self._stop.set()
        if self._thread.ident is None:
            self._release()
        elif self._thread.is_alive():
            self._thread.join(timeout)
