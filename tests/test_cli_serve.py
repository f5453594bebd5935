"""``edgemask-run --serve`` end to end with the stand-in pipeline: a real process (or the CLI in-process)
answering a real HTTP client and a real headless browser while it processes a video, a folder or a
camera, and the options refused before anything runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_client import chromium, connect, decode, get, parse_metrics, read_part, stats
from runtime_fakes import FakePicamera2, FakePipeline, read_index, stamp_index, write_video
from test_cli import flaky_camera

from edgemask.app import cli
from edgemask.app.cli import main
from edgemask.app.draw import COLORS, annotate
from edgemask.app.liveview import JPEG_QUALITY
from edgemask.core.pipeline import FrameResult

TESTS = Path(__file__).resolve().parent
SERVE_RUN = """
import os, sys, time
from types import SimpleNamespace
from runtime_fakes import FakePipeline
from edgemask.app.cli import main

class Paced(FakePipeline):
    detector = SimpleNamespace(family="yunet", backend=SimpleNamespace(path="det_int8.tflite", name="litert"))
    classifier = SimpleNamespace(backend=SimpleNamespace(path="cls_int8.tflite"))

    def infer(self, image):
        time.sleep(float(os.environ["FRAME_SECONDS"]))
        return super().infer(image)

sys.exit(main(sys.argv[1:], make_pipeline=lambda a: Paced()))
"""
FRAME_SIZE = (320, 240)


def bright_and_dark(n: int) -> list[np.ndarray]:
    """Frames alternating bright (the stand-in calls its centre face "mask") and dark ("no_mask")."""
    return [np.full((240, 320, 3), 200 if k % 2 == 0 else 40, np.uint8) for k in range(n)]


BELOW_FPS = 32
"""Rows from here down are in JPEG blocks that the FPS label in the top-left corner does not touch."""


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    return frames


def annotated_jpeg(image: np.ndarray) -> np.ndarray:
    """What the live view sends for ``image``: the stand-in's faces drawn on it, through JPEG."""
    shown = annotate(image, FakePipeline().infer(image).faces)
    return decode(cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())


class Run:
    """An ``edgemask-run`` process with the stand-in pipeline; ``url`` is the live view it announced."""

    def __init__(self, argv: list[str], tmp_path: Path, frame_seconds: float) -> None:
        env = {**os.environ, "PYTHONPATH": str(TESTS), "FRAME_SECONDS": str(frame_seconds)}
        self.stdout_path = tmp_path / "stdout.jsonl"
        with open(self.stdout_path, "w") as stdout:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE_RUN, *argv],
                env=env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
            )
        self.err_lines = [self.proc.stderr.readline()]
        match = re.search(r"live view on (http://\S+/)", self.err_lines[0])
        assert match, self.err_lines[0] + self.proc.stderr.read()
        self.url = match.group(1)

    def wait_until_ended(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while not (figures := stats(self.url))["ended"]:
            assert time.monotonic() < deadline, figures
            time.sleep(0.05)
        return figures

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        err = self.proc.stderr.read()
        self.proc.wait(timeout=30)
        return self.proc.returncode, "".join(self.err_lines) + err

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout_path.read_text().splitlines()]


@contextmanager
def running(argv: list[str], tmp_path: Path, frame_seconds: float = 0.02) -> Iterator[Run]:
    run = Run(argv, tmp_path, frame_seconds)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def test_endpoints_while_a_video_is_processed(tmp_path: Path) -> None:
    n = 120
    write_video(tmp_path / "clip.avi", bright_and_dark(n), FRAME_SIZE)
    argv = ["--source", str(tmp_path / "clip.avi"), "--serve", "0", "--json", "--quiet"]
    video = read_video(tmp_path / "clip.avi")
    with running(argv, tmp_path) as run:
        seen = [stats(run.url)["frames"]]
        response = connect(run.url, "/stream.mjpg")
        indices = []
        for _ in range(4):
            image = decode(read_part(response))
            k = read_index(image)
            indices.append(k)
            # Below the FPS label (which no reference can know) the part is the annotated frame k exactly.
            assert np.array_equal(image[BELOW_FPS:], annotated_jpeg(video[k])[BELOW_FPS:])
            seen.append(stats(run.url)["frames"])
        assert indices == sorted(set(indices))
        # A viewer vanishing in the middle of a part, and one that never read: processing goes on.
        vanishing = socket.create_connection(("127.0.0.1", int(run.url.rsplit(":", 1)[1].strip("/"))))
        vanishing.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        vanishing.recv(300)
        vanishing.close()
        response.close()
        figures = run.wait_until_ended()
        assert len(set(seen)) >= 3 and seen == sorted(seen)  # the frame count kept advancing
        assert figures["frames"] == n and figures["faces"] == {
            "total": 2 * n,
            "mask": n // 2,
            "no_mask": 3 * n // 2,
        }
        assert figures["models"] == {
            "detector": "det_int8.tflite",
            "family": "yunet",
            "classifier": "cls_int8.tflite",
            "runtime": "litert",
        }
        assert figures["source"]["kind"] == "video" and figures["end_reason"].startswith(
            f"{n} frames processed"
        )
        samples = parse_metrics(get(run.url, "/metrics")[2].decode())
        assert samples[("edgemask_frames_total", ())] == figures["frames"]
        for label in ("mask", "no_mask"):
            assert samples[("edgemask_faces_total", (("label", label),))] == figures["faces"][label]
        assert samples[("edgemask_stage_seconds_count", (("stage", "detect"),))] == n
        assert samples[("edgemask_source_ended", ())] == 1
        time.sleep(0.3)
        assert run.proc.poll() is None  # still serving the final figures
        code, err = run.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in err
        assert "until Ctrl-C" in err and "stopped by the user" not in err
        assert [r["frame"] for r in run.json_lines()] == list(range(n))


def test_a_signal_while_processing_stops_loop_and_server(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", bright_and_dark(200), FRAME_SIZE)
    argv = ["--source", str(tmp_path / "clip.avi"), "--serve", "0", "--json"]  # not quiet: the summary
    with running(argv, tmp_path, frame_seconds=0.03) as run:
        response = connect(run.url, "/stream.mjpg")
        assert read_part(response)
        code, err = run.stop(signal.SIGINT)
        assert code == 0 and "stopped by the user" in err and "Traceback" not in err
        parts = 0
        while read_part(response) is not None:  # the stream ends with the process, cleanly
            parts += 1
        assert parts < 200
        assert 0 < len(run.json_lines()) < 200


def colour_share(image: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float((np.abs(image.astype(int) - colour).max(axis=2) < 30).mean())


def test_the_page_in_a_headless_browser(tmp_path: Path) -> None:
    n = 9  # ends on a bright frame: its centre face is "mask" (green), the corner one "no_mask" (red)
    write_video(tmp_path / "clip.avi", bright_and_dark(n), FRAME_SIZE)
    with running(["--source", str(tmp_path / "clip.avi"), "--serve", "0", "--quiet"], tmp_path) as run:
        run.wait_until_ended()
        shot = tmp_path / "page.png"
        chromium(run.url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=800,600")
        code, _ = run.stop()
    assert code == 0
    page = cv2.imread(str(shot))
    assert page is not None, "chromium wrote no screenshot"
    picture = page[:240, :320]  # the <img> is the page's top-left element
    rest = np.concatenate([page[250:, :320].reshape(-1, 3), page[:, 330:].reshape(-1, 3)])[None]
    assert read_index(picture) == n - 1  # the last frame stays up after the source has ended
    assert colour_share(picture, COLORS["mask"]) > 0.002 and colour_share(picture, COLORS["no_mask"]) > 0.0005
    assert colour_share(rest, COLORS["mask"]) == 0 and colour_share(rest, COLORS["no_mask"]) == 0
    assert colour_share(picture, (200, 200, 200)) > 0.5  # and it is the frame itself, not a placeholder


@pytest.mark.parametrize("value", ["abc", "70000", "-1", "host:", "::1:8080", "80.5"])
def test_bad_serve_values_exit_2_with_a_usage_line(tmp_path: Path, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(tmp_path), "--serve", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: edgemask-run") and "argument --serve: " in err


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    write_video(tmp_path / "clip.avi", bright_and_dark(3), FRAME_SIZE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pipeline = FakePipeline()
        code = main(["--source", str(tmp_path / "clip.avi"), "--serve", str(port)], lambda args: pipeline)
    assert code == 2 and pipeline.seen == []
    err = capsys.readouterr().err
    assert (
        err
        == f"edgemask-run: error: --serve 127.0.0.1:{port}: cannot listen there (Address already in use)\n"
    )


def test_token_options_are_checked(tmp_path: Path, capsys) -> None:
    assert main(["--source", str(tmp_path), "--serve-token", "x"], lambda a: FakePipeline()) == 2
    assert "--serve-token needs --serve" in capsys.readouterr().err
    assert (
        main(["--source", str(tmp_path), "--serve", "0", "--serve-token", " "], lambda a: FakePipeline()) == 2
    )
    assert "must not be empty" in capsys.readouterr().err


class Probe(FakePipeline):
    """Looks at the live view from inside the loop: before frame ``at`` it records the figures and
    the first part of the stream (the newest frame published so far)."""

    def __init__(self, servers: list, at: int = 2) -> None:
        super().__init__()
        self.servers, self.at = servers, at
        self.figures: dict = {}
        self.picture: np.ndarray | None = None

    def infer(self, image: np.ndarray) -> FrameResult:
        if len(self.seen) == self.at:
            url = self.servers[-1].url
            self.figures = stats(url)
            response = connect(url, "/stream.mjpg")
            self.picture = decode(read_part(response))
            response.close()
        return super().infer(image)


@pytest.fixture
def served(monkeypatch) -> tuple[list, list]:
    """The servers the CLI opened, and the final figures of each run that would have kept serving
    (the wait for Ctrl-C itself is skipped)."""
    servers: list = []
    lingered: list = []
    real = cli.serving

    @contextmanager
    def recording(*args, **kwargs):
        with real(*args, **kwargs) as server:
            servers.append(server)
            yield server

    monkeypatch.setattr(cli, "serving", recording)
    monkeypatch.setattr(
        cli, "serve_until_stopped", lambda server, stop, say: lingered.append(server.figures())
    )
    return servers, lingered


def test_a_folder_with_sorting_and_json(tmp_path: Path, served, capsys) -> None:
    servers, lingered = served
    (tmp_path / "in").mkdir()
    for k, image in enumerate(bright_and_dark(5)):
        cv2.imwrite(str(tmp_path / "in" / f"{k}.png"), stamp_index(image, k))  # distinct contents
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    probe = Probe(servers)
    argv = [
        "--source",
        str(tmp_path / "in"),
        "--serve",
        "0",
        "--json",
        "--sort-into",
        str(tmp_path / "sorted"),
    ]
    assert main(argv, lambda a: probe) == 0
    assert probe.figures["frames"] == 2 and probe.figures["source"]["kind"] == "images"
    assert probe.picture.shape == (240, 320, 3)
    assert len(check_lines := capsys.readouterr().out.splitlines()) == 5 and all(
        json.loads(x) for x in check_lines
    )
    assert len(lingered) == 1
    final = lingered[0]
    assert (final["frames"], final["skipped"], final["ended"]) == (5, 1, True)
    assert final["faces"] == {"total": 10, "mask": 3, "no_mask": 7}
    assert len((tmp_path / "sorted" / "manifest.csv").read_text().splitlines()) == 1 + 10


def test_a_lost_camera_exits_at_once(monkeypatch, served, capsys) -> None:
    servers, lingered = served
    flaky_camera(monkeypatch, first_frames=300)
    probe = Probe(servers, at=3)
    assert main(["--camera", "0", "--serve", "0", "--retries", "0"], lambda a: probe) == 1
    assert probe.figures["frames"] == 3 and probe.figures["source"]["live"]
    assert read_index(probe.picture) == probe.figures["last_frame"]["index"]
    assert lingered == []  # a lost live source ends the process (exit 1) for a supervisor to restart it
    assert "live view on http://127.0.0.1:" in capsys.readouterr().err


def test_picam_with_max_frames_and_a_network_address(monkeypatch, served, capsys) -> None:
    servers, lingered = served
    monkeypatch.setattr("edgemask.app.camera.load_picamera2", lambda: FakePicamera2)
    probe = Probe(servers)
    argv = ["--camera", "picam", "--camera-size", "320x240", "--max-frames", "4", "--serve", "0.0.0.0:0"]
    assert main(argv, lambda a: probe) == 0
    assert probe.figures["frames"] == 2 and probe.picture.shape == (240, 320, 3)
    assert lingered[0]["frames"] == 4 and lingered[0]["ended"]
    err = capsys.readouterr().err
    assert "warning: serving on 0.0.0.0: the live picture and figures are reachable from the network" in err
    assert len([line for line in err.splitlines() if "warning" in line]) == 1


def test_closing_the_window_ends_the_run_and_the_live_view(
    tmp_path: Path, served, monkeypatch, capsys
) -> None:
    servers, lingered = served
    write_video(tmp_path / "clip.avi", bright_and_dark(6), FRAME_SIZE)
    keys = iter([-1, ord("q")])
    monkeypatch.setattr(cli, "gui_problem", lambda: None)
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, image: None)
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    assert (
        main(["--source", str(tmp_path / "clip.avi"), "--show", "--serve", "0"], lambda a: FakePipeline())
        == 0
    )
    assert lingered == [] and servers[0].view.snapshot()["status"] == "ended: stopped by the user"
    assert "stopped by the user" in capsys.readouterr().err
