"""Which reader a --source gets, how bad files come out, and that video files lose no frame."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from runtime_fakes import read_index, stamp_index, write_video

from edgemask.app.camera import Backoff
from edgemask.app.sources import (
    ALREADY_DONE,
    NOT_AN_IMAGE,
    UNDECODABLE,
    ZERO_BYTE,
    Frame,
    ImageFiles,
    Skipped,
    SourceError,
    VideoFile,
    is_live,
    list_files,
    open_source,
    redact_url,
)


def scene_images(scenes_dir: Path, n: int) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((scenes_dir / "images").iterdir())[:n]]


@pytest.mark.parametrize(
    ("spec", "live"),
    [
        ("0", True),
        ("12", True),
        ("picam", True),
        ("picam:1", True),
        ("/dev/video2", True),
        ("rtsp://10.0.0.2/stream", True),
        ("http://host:8080/video.mjpg", True),
        ("photos/", False),
        ("picamera_shots/", False),
        ("clip.mp4", False),
        ("*.jpg", False),
    ],
)
def test_is_live(spec: str, live: bool) -> None:
    assert is_live(spec) is live


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("rtsp://admin:hunter2@cam.local:554/h264") == "rtsp://admin:***@cam.local:554/h264"
    assert redact_url("rtsp://cam.local/live") == "rtsp://cam.local/live"
    assert redact_url("3") == "3"


def test_open_source_picks_the_reader(tmp_path: Path, scenes_dir: Path) -> None:
    (tmp_path / "a").mkdir()
    img = tmp_path / "a" / "x.jpg"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    write_video(tmp_path / "v.avi", scene_images(scenes_dir, 2))
    folder = open_source(str(tmp_path / "a"))
    assert isinstance(folder, ImageFiles) and folder.total == 1
    single = open_source(str(img))
    assert isinstance(single, ImageFiles) and [f.key for f in single] == ["x.jpg"]
    globbed = open_source(str(tmp_path / "*" / "*.jpg"))
    assert isinstance(globbed, ImageFiles) and globbed.total == 1
    video = open_source(str(tmp_path / "v.avi"))
    assert isinstance(video, VideoFile) and not video.live
    video.close()
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="no files match"):
        open_source(str(tmp_path / "*.png"))


def write_bad_and_odd_images(folder: Path, scene: Path) -> dict[str, str]:
    """Every awkward input the runtime promises to survive; returns the expected skip reason per file
    ("" for files that must be read)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = scene.read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image at all")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("hello")
    huge = folder / "huge.png"
    small = np.zeros((4, 4), np.uint8)
    cv2.imwrite(str(huge), small)
    raw = bytearray(huge.read_bytes())
    raw[16:24] = (60000).to_bytes(4, "big") * 2  # claim 60000×60000 pixels in the PNG header
    huge.write_bytes(bytes(raw))
    base = cv2.imread(str(scene))
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(base, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(base, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep16.png"), base.astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(base[:, :, ::-1]).save(folder / "rotated.jpg", exif=exif)
    return {
        "empty.jpg": ZERO_BYTE,
        "text.jpg": UNDECODABLE,
        "truncated.jpg": UNDECODABLE,
        "notes.txt": NOT_AN_IMAGE,
        "huge.png": UNDECODABLE,
        "gray.png": "",
        "rgba.png": "",
        "deep16.png": "",
        "rotated.jpg": "",
    }


def test_bad_files_are_skipped_with_reasons_and_odd_ones_read(tmp_path: Path, scenes_dir: Path) -> None:
    scene = sorted((scenes_dir / "images").iterdir())[0]
    expected = write_bad_and_odd_images(tmp_path / "in", scene)
    h, w = cv2.imread(str(scene)).shape[:2]
    items = list(open_source(str(tmp_path / "in")))
    assert len(items) == len(expected)
    for item in items:
        name = Path(item.name).name
        if isinstance(item, Skipped):
            assert item.reason == expected[name], name
        else:
            assert expected[name] == "", name
            assert item.image.dtype == np.uint8 and item.image.shape[2] == 3
            assert item.image.shape[:2] == ((w, h) if name == "rotated.jpg" else (h, w))
    skipped = [i.index for i in items if isinstance(i, Skipped)]
    frames = [i.index for i in items if isinstance(i, Frame)]
    assert skipped == [k for k, i in enumerate(items) if isinstance(i, Skipped)]  # place in the listing
    assert frames == list(range(len(frames)))  # frames are numbered as they come out


def test_done_predicate_skips_by_content_and_frames_carry_their_digest(tmp_path: Path) -> None:
    for name, value in (("a.png", 0), ("b.png", 9)):
        cv2.imwrite(str(tmp_path / name), np.full((4, 4, 3), value, np.uint8))
    done_digest = hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest()
    source = ImageFiles(list_files(tmp_path), tmp_path, done=lambda digest, key: digest == done_digest)
    items = list(source)
    assert isinstance(items[0], Skipped) and items[0].reason == ALREADY_DONE
    assert isinstance(items[1], Frame) and items[1].key == "b.png" and items[1].index == 0
    assert items[1].digest == hashlib.sha256((tmp_path / "b.png").read_bytes()).hexdigest()


def test_list_files_leaves_out_output_folders(tmp_path: Path) -> None:
    (tmp_path / "out" / "with_mask").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    for p in ("a.jpg", "sub/b.jpg", "out/with_mask/c.jpg"):
        (tmp_path / p).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path, exclude=(tmp_path / "out",))]
    assert found == ["a.jpg", "sub/b.jpg"]


def test_video_file_yields_every_frame_in_order_even_for_a_slow_consumer(
    tmp_path: Path, scenes_dir: Path
) -> None:
    images = scene_images(scenes_dir, 12)
    write_video(tmp_path / "clip.avi", images)
    with VideoFile(tmp_path / "clip.avi") as video:
        assert video.total == 12 and video.fps == pytest.approx(10)
        indices = []
        for frame in video:
            indices.append((frame.index, read_index(frame.image)))
            time.sleep(0.01)
    assert indices == [(k, k) for k in range(12)]
    assert video.end_reason is None


def test_truncated_video_says_so(tmp_path: Path, scenes_dir: Path) -> None:
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 10))
    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with VideoFile(tmp_path / "cut.avi") as video:
        n = sum(1 for _ in video)
    assert 0 < n < 10
    assert video.end_reason is not None and "truncated" in video.end_reason


def test_unopenable_video_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_text("no video here")
    with pytest.raises(SourceError, match="cannot be opened as a video"):
        open_source(str(tmp_path / "bad.mp4"))


class MjpegServer:
    """A one-thread HTTP MJPEG camera on the loopback: ``connections`` clients in turn get ``frames``
    stamped frames each, then the port closes, like a network camera that goes away."""

    def __init__(self, frames: int, connections: int) -> None:
        self.frames = frames
        self.connections = connections
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/stream.mjpg"
        self.sent = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        with self.listener:
            for _ in range(self.connections):
                conn, _ = self.listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n"
                    )
                    for _ in range(self.frames):
                        image = stamp_index(np.full((64, 160, 3), 90, np.uint8), self.sent)
                        data = cv2.imencode(".jpg", image)[1].tobytes()
                        head = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                        conn.sendall(head + data + b"\r\n")
                        self.sent += 1
                        time.sleep(0.01)


def test_a_real_http_stream_reconnects_then_ends_cleanly() -> None:
    server = MjpegServer(frames=10, connections=2)
    stream = open_source(server.url, Backoff(retries=2, delay=0.01), stall_timeout=5.0)
    assert stream.live and stream.name == server.url
    seen = [(f.index, read_index(f.image)) for f in stream]
    stream.close()
    assert all(index == stamped for index, stamped in seen)  # reader numbering == the camera's
    assert seen[-1][0] == 19 and stream.reader.frames_read == 20
    assert stream.reader.reconnects == 3  # one that worked, two refused
    assert stream.end_reason.startswith("no frames after 2 reconnect attempts")
