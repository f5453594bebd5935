"""What edgemask-run shows and saves: annotations, real-time video saving, the GUI check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from runtime_fakes import FakePipeline, read_index, stamp_index
from tqdm import tqdm

from edgemask.app import display
from edgemask.app.cli import main
from edgemask.app.draw import COLORS, LANDMARK_COLOR, annotate
from edgemask.app.recording import VideoSaver
from edgemask.app.sources import Frame
from edgemask.core.pipeline import Face


def test_annotate_draws_coloured_boxes_on_a_copy() -> None:
    image = np.full((120, 160, 3), 128, np.uint8)
    faces = [Face((40, 50, 80, 100), "mask", 0.93, 0.9), Face((100, 60, 140, 110), "no_mask", 0.7, 0.8)]
    out = annotate(image, faces)
    assert (image == 128).all()
    assert tuple(out[99, 60]) == COLORS["mask"]  # bottom edge of the first box (x2, y2 exclusive)
    assert tuple(out[80, 139]) == COLORS["no_mask"]  # right edge of the second
    assert (out[70:90, 50:70] == 128).all()  # inside stays clean
    assert (out[35:49, 40:80] != 128).any()  # the label sits above the box


def test_landmarks_are_dotted_where_the_detector_put_them() -> None:
    image = np.full((120, 160, 3), 128, np.uint8)
    points = ((50.0, 65.0), (70.0, 65.0), (60.0, 75.0), (52.0, 85.0), (68.0, 85.0))
    out = annotate(image, [Face((40, 50, 80, 100), "mask", 0.9, 0.9, points)])
    for x, y in points:
        assert tuple(out[int(y), int(x)]) == LANDMARK_COLOR
    assert (out[90:98, 56:64] == 128).all()  # nothing drawn between the mouth corners and the edge
    plain = annotate(image, [Face((40, 50, 80, 100), "mask", 0.9, 0.9)])
    assert not (plain == LANDMARK_COLOR).all(axis=-1).any()


def test_faces_at_the_border_keep_their_labels_inside() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    out = annotate(
        image, [Face((0, 0, 80, 60), "no_mask", 0.5, 0.5), Face((70, 55, 80, 60), "mask", 0.9, 0.9)]
    )
    assert out.shape == image.shape
    assert tuple(out[59, 40]) == COLORS["no_mask"]
    assert (out[:20, :] != 0).any()


def test_fps_counter_is_drawn_top_left() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    assert not annotate(image, []).any()
    assert annotate(image, [], fps=12.5)[:20, :80].any()


def frame_with(k: int) -> Frame:
    return Frame(stamp_index(np.zeros((64, 160, 3), np.uint8), k), k, "0", "0")


def count_frames(path: Path) -> list[int]:
    cap = cv2.VideoCapture(str(path))
    got = []
    while (item := cap.read())[0]:
        got.append(read_index(item[1]))
    cap.release()
    return got


def test_live_video_repeats_frames_to_play_in_real_time(tmp_path: Path) -> None:
    times = iter([0.0, 0.0, 0.05, 0.5])  # the file opens at t=0 with frame 0, then frames at 0.05 s, 0.5 s
    saver = VideoSaver(tmp_path / "cam.avi", fps=10, realtime=True, clock=lambda: next(times))
    for k in range(3):
        saver.write(frame_with(k), frame_with(k).image)
    saver.close()
    # t=0: frame 0; t=0.05: nothing due yet at 10 fps (dropped); t=0.5: frames 1-5 due, all showing frame 2.
    assert count_frames(tmp_path / "cam.avi") == [0, 2, 2, 2, 2, 2]


def test_video_saving_never_overwrites_and_drops_empty_files(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").write_bytes(b"earlier result")
    saver = VideoSaver(tmp_path / "out.mp4", fps=5, realtime=False)
    for k in range(3):
        saver.write(frame_with(k), frame_with(k).image)
    saver.close()
    assert (tmp_path / "out.mp4").read_bytes() == b"earlier result"
    assert count_frames(tmp_path / "out-1.mp4") == [0, 1, 2]
    unused = VideoSaver(tmp_path / "none.mp4", fps=5, realtime=False)
    unused.close()
    assert not (tmp_path / "none.mp4").exists()


def test_frames_of_another_size_are_fitted(tmp_path: Path) -> None:
    saver = VideoSaver(tmp_path / "v.avi", fps=5, realtime=False)
    saver.write(frame_with(0), frame_with(0).image)
    saver.write(frame_with(1), cv2.resize(frame_with(1).image, (320, 128)))
    saver.close()
    assert count_frames(tmp_path / "v.avi") == [0, 1]


@pytest.mark.parametrize(
    ("gui", "env", "problem"),
    [
        ("NONE", {"DISPLAY": ":0"}, "no GUI support"),
        ("GTK3", {}, "$DISPLAY is not set"),
        ("GTK3", {"DISPLAY": ":0"}, None),
        ("QT5", {"WAYLAND_DISPLAY": "wayland-0"}, None),
    ],
)
def test_gui_problem(monkeypatch: pytest.MonkeyPatch, gui: str, env: dict, problem: str | None) -> None:
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: f"  GUI:                  {gui}\n  Media I/O:\n")
    monkeypatch.setattr(display.sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    found = display.gui_problem()
    assert found is None if problem is None else problem in found


class RecordingBar:
    """Stands in for tqdm: records the total and the updates of the progress bar."""

    made: ClassVar[list[RecordingBar]] = []
    write = staticmethod(tqdm.write)

    def __init__(self, total=None, **kwargs) -> None:
        self.total, self.n, self.closed = total, 0, False
        RecordingBar.made.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def five_images(folder: Path) -> Path:
    folder.mkdir()
    for k in range(5):
        cv2.imwrite(str(folder / f"{k}.png"), np.full((20, 30, 3), 40 * k, np.uint8))
    (folder / "broken.jpg").write_bytes(b"")
    return folder


@pytest.mark.parametrize(("max_frames", "total", "count"), [(None, 6, 6), (2, 2, 2), (50, 6, 5)])
def test_progress_bar_total_is_what_will_be_processed(
    tmp_path: Path, monkeypatch, max_frames, total: int, count: int
) -> None:
    """Without --max-frames the bar counts every input (skipped ones too); with it, processed frames
    towards the cap (at most the inputs there are)."""
    from edgemask.app import outputs

    monkeypatch.setattr(outputs, "tqdm", RecordingBar)
    RecordingBar.made.clear()
    argv = ["--source", str(five_images(tmp_path / "in"))] + (
        ["--max-frames", str(max_frames)] if max_frames else []
    )
    assert main(argv, make_pipeline=lambda a: FakePipeline()) == 0
    (bar,) = RecordingBar.made
    assert (bar.total, bar.n, bar.closed) == (total, count, True)


def test_quiet_prints_nothing_on_success_and_the_summary_on_failure(tmp_path: Path, capsys) -> None:
    folder = five_images(tmp_path / "in")
    assert main(["--source", str(folder), "--quiet", "--json"], make_pipeline=lambda a: FakePipeline()) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.splitlines()) == 5
    for k in range(5):
        (folder / f"{k}.png").write_bytes(b"not a picture")
    assert main(["--source", str(folder), "--quiet"], make_pipeline=lambda a: FakePipeline()) == 1
    err = capsys.readouterr().err
    assert (
        "0 images processed" in err and "skipped 6: " not in err and "skipped 5: not a decodable image" in err
    )


def test_native_info_lines_are_dropped_and_the_rest_passed_on(capfd) -> None:
    from edgemask.core.native_log import native_info_dropped

    with native_info_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: something real\n")
    os.write(2, b"INFO: after the block\n")
    err = capfd.readouterr().err
    assert err == "ERROR: something real\nINFO: after the block\n"


def test_native_info_lines_are_kept_when_asked(capfd, monkeypatch) -> None:
    from edgemask.core.native_log import KEEP_ENV, native_info_dropped

    monkeypatch.setenv(KEEP_ENV, "1")
    with native_info_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert capfd.readouterr().err == "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"


def test_counts_in_the_summary_agree_in_number(tmp_path: Path, capsys) -> None:
    folder = five_images(tmp_path / "in")
    assert main(["--source", str(folder / "0.png")], make_pipeline=lambda a: FakePipeline()) == 0
    assert "edgemask-run: 1 image processed, 2 faces (" in capsys.readouterr().err
    assert main(["--source", str(folder / "0.png")], make_pipeline=lambda a: FakePipeline(faceless=True)) == 0
    err = capsys.readouterr().err
    assert "1 image processed, 0 faces (none)" in err
    assert "1 detection smaller than the minimum face size ignored" in err
