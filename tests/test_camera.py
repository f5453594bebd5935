"""The live reader: newest frame only, bounded reconnect with back-off, stalls; the Pi camera adapter."""

from __future__ import annotations

import time

import numpy as np
import pytest
from runtime_fakes import FakeCapture, FakePicamera2, read_index

from edgemask.app.camera import (
    Backoff,
    CameraError,
    LatestFrameReader,
    PicameraCapture,
    open_capture,
    parse_picamera,
)
from edgemask.app.sources import LiveStream, open_live


class RecordingSleep:
    """A fake ``sleep`` that only remembers how long it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def drain(reader: LatestFrameReader, timeout: float = 5.0) -> list[int]:
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = reader.get(timeout=0.5)
        if item is None:
            if reader.ended:
                return got
            continue
        got.append(item[0])
        assert read_index(item[1]) == item[0] % 256
    raise AssertionError("reader did not end")


def test_backoff_doubles_up_to_the_cap() -> None:
    b = Backoff(retries=6, delay=0.5, factor=2.0, max_delay=3.0)
    assert [b.wait_before(k) for k in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_reader_gives_up_after_bounded_reconnects_with_back_off() -> None:
    first = FakeCapture(frames=5)
    opened: list[FakeCapture] = []

    def reopen() -> FakeCapture:
        opened.append(FakeCapture(frames=0))
        return opened[-1]

    sleep = RecordingSleep()
    reader = LatestFrameReader(first, reopen, Backoff(retries=4, delay=0.5), sleep=sleep)
    reader.start()
    got = drain(reader)
    reader.stop()
    assert got == sorted(got) and got[-1] == 4
    assert sleep.delays == [0.5, 1.0, 2.0, 4.0]
    assert reader.reconnects == 4 and len(opened) == 4
    assert first.released and all(c.released for c in opened)
    assert reader.end_reason == "no frames after 4 reconnect attempts"


def test_reader_resumes_after_a_successful_reconnect_and_counts_on() -> None:
    captures = [FakeCapture(frames=0), FakeCapture(frames=3, start=3, period=0.01)]

    def reopen() -> FakeCapture:
        if not captures:
            raise CameraError("camera 0 cannot be opened")
        return captures.pop(0)

    sleep = RecordingSleep()
    reader = LatestFrameReader(
        FakeCapture(frames=3, period=0.01), reopen, Backoff(retries=2, delay=0.1), sleep
    )
    reader.start()
    got = drain(reader)
    reader.stop()
    # Frames 0-2, a reopened capture without frames, then 3-5; frames coming again reset the attempt
    # count, so the final loss gets the full 2 attempts again (both reopens raise).
    assert got[-1] == 5 and got == sorted(got)
    assert reader.frames_read == 6
    assert sleep.delays == [0.1, 0.2, 0.1, 0.2]


class OddCapture(FakeCapture):
    """Delivers an unusable frame (complex pixels), then a good one, then raises from read()."""

    calls = 0

    def read(self):
        self.calls += 1
        if self.calls == 1:
            return True, np.zeros((4, 4), np.complex64)
        if self.calls == 2:
            return super().read()
        raise OSError("device unplugged")


def test_unusable_frames_and_driver_errors_are_lost_frames_not_crashes() -> None:
    odd = OddCapture(frames=5)
    sleep = RecordingSleep()
    reader = LatestFrameReader(odd, lambda: odd, Backoff(retries=1, delay=0.1), sleep).start()
    got = drain(reader)
    # bad frame -> reopen, good frame 0 (attempts reset), OSError -> reopen, OSError -> give up
    assert got == [0] and reader.frames_read == 1
    assert sleep.delays == [0.1, 0.1]
    assert reader.end_reason == "no frames after 1 reconnect attempts"


def test_reopen_errors_count_as_failed_attempts() -> None:
    def reopen() -> FakeCapture:
        raise CameraError("camera 0 cannot be opened")

    sleep = RecordingSleep()
    reader = LatestFrameReader(FakeCapture(frames=2), reopen, Backoff(retries=3, delay=1.0), sleep).start()
    assert drain(reader)[-1] == 1
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert reader.end_reason == "no frames after 3 reconnect attempts (last error: camera 0 cannot be opened)"


def test_slow_consumer_always_gets_the_newest_frame() -> None:
    """A 200 fps camera and a consumer needing 30 ms a frame: most frames are dropped, the ones taken are
    strictly newer each time, and none is older than what the camera had just delivered."""
    cam = FakeCapture(frames=60, period=0.005)
    reader = LatestFrameReader(cam, lambda: FakeCapture(0), Backoff(retries=0), RecordingSleep()).start()
    taken, lag = [], []
    while (item := reader.get(timeout=1.0)) is not None:
        taken.append(item[0])
        lag.append(reader.frames_read - 1 - item[0])
        time.sleep(0.03)
    reader.stop()
    assert taken == sorted(set(taken))
    assert taken[-1] == 59
    assert len(taken) < 30, f"expected dropped frames, took {len(taken)} of 60"
    # A queue would fall ~5 frames further behind with every frame taken; the lag here stays flat.
    assert max(lag) <= 2


def test_stream_stops_cleanly_when_a_read_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    cam = FakeCapture(frames=2, block=True)
    stream = LiveStream("0", lambda: cam, Backoff(retries=3), stall_timeout=0.2, poll=0.05)
    frames = [f.index for f in stream]
    cam.unblock.set()
    stream.close()
    assert frames[-1] == 1 and frames == sorted(frames)
    assert "no frame for 0.2 s" in stream.end_reason


def test_a_stop_request_ends_a_live_stream_even_during_back_off() -> None:
    stream = LiveStream("0", lambda: FakeCapture(frames=1), Backoff(retries=3, delay=30.0), poll=0.02)
    started = time.monotonic()
    got = []
    for frame in stream:
        got.append(frame.index)
        stream.should_stop = lambda: True
    stream.close()
    assert got == [0]
    assert time.monotonic() - started < 5
    assert not stream.reader._thread.is_alive()


def test_live_stream_reports_drops_and_frame_numbers() -> None:
    cam = FakeCapture(frames=40, period=0.002)
    stream = LiveStream("0", lambda: cam, Backoff(retries=0), poll=0.05)
    indices = []
    for frame in stream:
        indices.append(frame.index)
        time.sleep(0.02)
    stream.close()
    assert indices[-1] == 39 and indices == sorted(indices)
    assert stream.dropped == 40 - len(indices) > 0
    assert stream.end_reason == "no frames after 0 reconnect attempts"
    assert stream.fps == 30.0


def test_parse_picamera() -> None:
    assert parse_picamera("picam") == 0
    assert parse_picamera("PiCam:2") == 2
    assert parse_picamera("0") is None
    with pytest.raises(CameraError, match="picam:N"):
        parse_picamera("picam:front")


def test_picamera_adapter_configures_bgr_frames_and_releases() -> None:
    cap = open_capture("picam:1", (320, 240), picamera2_cls=FakePicamera2)
    cam = FakePicamera2.instances[-1]
    assert isinstance(cap, PicameraCapture)
    assert cam.camera_num == 1 and cam.started
    assert cam.config == {"main": {"size": (320, 240), "format": "RGB888"}}
    ok, image = cap.read()
    assert ok and image.shape == (240, 320, 3) and image.dtype == np.uint8
    cap.release()
    assert cam.closed and not cam.started


def test_picamera_failing_mid_stream_reconnects_then_ends() -> None:
    made: list[FakePicamera2] = []

    def picam(num: int) -> FakePicamera2:
        made.append(FakePicamera2(num, fail_after=3 if not made else 0))
        return made[-1]

    sleep = RecordingSleep()
    stream = open_live(
        "picam", Backoff(retries=2, delay=0.25), size=(160, 64), picamera2_cls=picam, sleep=sleep
    )
    indices = [f.index for f in stream]
    stream.close()
    assert indices == sorted(indices) and indices[-1] == 2
    assert sleep.delays == [0.25, 0.5]
    assert len(made) == 3 and all(c.closed for c in made)
    assert stream.end_reason == "no frames after 2 reconnect attempts"


def test_picamera_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "picamera2", None)
    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        open_capture("picam")


def test_picamera_that_cannot_start_is_a_camera_error() -> None:
    def broken(num: int) -> FakePicamera2:
        raise IndexError("list index out of range")  # what Picamera2 raises with no camera attached

    with pytest.raises(CameraError, match="Pi camera 0 cannot be opened"):
        open_capture("picam", picamera2_cls=broken)


def test_opencv_camera_that_does_not_exist() -> None:
    with pytest.raises(CameraError, match="camera 97 cannot be opened"):
        open_capture("97")
