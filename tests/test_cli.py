"""edgemask-run plumbing with a stand-in pipeline: JSON lines, exit codes, saving, cameras, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import FakeCapture, FakePicamera2, FakePipeline, read_index, write_video
from test_sources import scene_images, write_bad_and_odd_images

from edgemask.app import cli
from edgemask.app.camera import CameraError
from edgemask.app.cli import main
from edgemask.app.models import MODELS_ENV, model_dirs, resolve_model
from edgemask.app.sorting.manifest import LOCK_FILE
from edgemask.core.formats import MODELS, default_precision

JSON_KEYS = {"source", "frame", "width", "height", "faces", "ms"}
FACE_KEYS = {"box", "label", "score", "face_score"}
LANDMARK_KEY = "landmarks"


def run(argv: list[str], pipeline: FakePipeline | None = None) -> int:
    pipeline = pipeline or FakePipeline()
    return main(argv, make_pipeline=lambda args: pipeline)


def check_json_lines(stdout: str) -> list[dict]:
    """Every stdout line is one JSON object of the documented shape, boxes inside the image."""
    records = [json.loads(line) for line in stdout.splitlines()]
    for r in records:
        assert set(r) == JSON_KEYS
        assert isinstance(r["source"], str) and isinstance(r["frame"], int)
        assert isinstance(r["width"], int) and isinstance(r["height"], int)
        assert set(r["ms"]) == {"detect", "classify", "total"}
        assert all(isinstance(v, float) for v in r["ms"].values())
        for face in r["faces"]:
            assert set(face) - {LANDMARK_KEY} == FACE_KEYS
            if LANDMARK_KEY in face:
                assert len(face[LANDMARK_KEY]) == 5 and all(len(xy) == 2 for xy in face[LANDMARK_KEY])
            x1, y1, x2, y2 = face["box"]
            assert all(isinstance(v, int) for v in face["box"])
            assert 0 <= x1 < x2 <= r["width"] and 0 <= y1 < y2 <= r["height"]
            assert face["label"] in ("mask", "no_mask")
            assert 0.0 <= face["score"] <= 1.0 and 0.0 <= face["face_score"] <= 1.0
    return records


def test_help_is_grouped_with_examples(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for heading in (
        "input (exactly one):",
        "output:",
        "models:",
        "cameras and streams:",
        "examples:",
        "exit codes:",
    ):
        assert heading in out
    assert "edgemask-run --camera picam" in out


def test_camera_and_source_are_exclusive_and_one_is_required(capsys) -> None:
    for argv in ([], ["--camera", "0", "--source", "x"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2


def test_json_lines_for_a_folder_of_awkward_images(tmp_path: Path, scenes_dir: Path, capsys) -> None:
    scene = sorted((scenes_dir / "images").iterdir())[0]
    expected = write_bad_and_odd_images(tmp_path / "in", scene)
    h, w = cv2.imread(str(scene)).shape[:2]
    assert run(["--source", str(tmp_path / "in"), "--json"]) == 0
    captured = capsys.readouterr()
    records = check_json_lines(captured.out)
    names = {Path(r["source"]).name: r for r in records}
    assert sorted(names) == sorted(k for k, v in expected.items() if v == "")
    assert (names["rotated.jpg"]["width"], names["rotated.jpg"]["height"]) == (h, w)
    assert (names["gray.png"]["width"], names["gray.png"]["height"]) == (w, h)
    frames = [r["frame"] for r in records]
    assert frames == sorted(frames)
    # The centre face of the stand-in is exactly the middle half of each image, in original pixels.
    for r in records:
        assert r["faces"][0]["box"] == [
            r["width"] // 4,
            r["height"] // 4,
            3 * r["width"] // 4,
            3 * r["height"] // 4,
        ]
    assert "4 images processed, 8 faces" in captured.err
    assert "skipped 1: zero-byte file" in captured.err


def test_missing_model_names_the_file_and_the_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    (tmp_path / "a.jpg").write_bytes(b"")
    assert main(["--source", str(tmp_path / "a.jpg"), "--precision", "int8"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "face_detector_yunet_int8.tflite") in err and "edgemask-export" in err
    assert main(["--source", str(tmp_path / "a.jpg"), "--backend", "onnx", "--detector", "res10"]) == 2
    assert "face_detector_res10_int8.onnx" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "a.jpg"), "--precision", "fp32"]) == 2
    assert "face_detector_yunet_fp32.tflite" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "a.jpg"), "--detector", str(tmp_path / "mine.tflite")]) == 2
    assert f"detector model not found: {tmp_path / 'mine.tflite'}" in capsys.readouterr().err


def test_models_env_overrides_the_repo_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mask_classifier_int8.onnx").write_bytes(b"x")
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert resolve_model("classifier", "onnx", "classifier") == tmp_path / "mask_classifier_int8.onnx"
    monkeypatch.delenv(MODELS_ENV)
    assert model_dirs()[0] == Path(cli.__file__).resolve().parents[2] / "models"


def test_show_without_gui_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "gui_problem", lambda: "this OpenCV build has no GUI support")
    pipeline = FakePipeline()
    assert run(["--source", str(tmp_path), "--show"], pipeline) == 2
    assert "no GUI support" in capsys.readouterr().err
    assert pipeline.seen == []


def test_show_stops_when_the_user_presses_q(tmp_path: Path, scenes_dir: Path, monkeypatch) -> None:
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 6))
    shown, keys = [], iter([-1, -1, ord("q")])
    monkeypatch.setattr(cli, "gui_problem", lambda: None)
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append(image))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    pipeline = FakePipeline()
    assert run(["--source", str(tmp_path / "clip.avi"), "--show"], pipeline) == 0
    assert len(shown) == 3 and len(pipeline.seen) == 3
    assert shown[0].shape == (240, 320, 3)


def test_save_folder_never_overwrites(tmp_path: Path, capsys) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.full((30, 40, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "in" / "sub" / "b.jpg"), np.full((30, 40, 3), 50, np.uint8))
    out = tmp_path / "out"
    assert run(["--source", str(tmp_path / "in"), "--save", str(out)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["a.png", "sub__b.jpg"]
    assert run(["--source", str(tmp_path / "in"), "--save", str(out)]) == 0
    assert f"saved 2 annotated image(s) to {out}, 2 under a numbered name" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a-1.png", "a.png", "sub__b-1.jpg", "sub__b.jpg"]
    assert {n: (out / n).read_bytes() for n in first} == first
    annotated = cv2.imread(str(out / "a.png"))
    assert tuple(annotated[3 * 30 // 4 - 1, 40 // 2]) == (60, 180, 40)  # bottom edge of the green "mask" box


def test_save_single_image_gets_a_numbered_name(tmp_path: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "out.jpg").write_bytes(b"precious")
    assert run(["--source", str(tmp_path / "a.png"), "--save", str(tmp_path / "out.jpg")]) == 0
    assert (tmp_path / "out.jpg").read_bytes() == b"precious"
    assert "exists and was left alone" in capsys.readouterr().err
    assert cv2.imread(str(tmp_path / "out-1.jpg")).shape == (20, 20, 3)


@pytest.mark.parametrize(
    ("source", "save", "message"),
    [
        ("folder", "out.mp4", "images are saved as images"),
        ("folder", "out.jpg", "several images are saved into a folder"),
        ("clip.avi", "out_dir", "saved as a .mp4 or .avi"),
    ],
)
def test_save_target_must_fit_the_source(
    tmp_path: Path, scenes_dir: Path, capsys, source, save, message
) -> None:
    (tmp_path / "folder").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "folder" / name), np.zeros((8, 8, 3), np.uint8))
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 2))
    assert run(["--source", str(tmp_path / source), "--save", str(tmp_path / save)]) == 2
    assert message in capsys.readouterr().err


def test_video_file_every_frame_in_order_to_json_and_video(tmp_path: Path, scenes_dir: Path, capsys) -> None:
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 15))
    pipeline = FakePipeline()
    assert (
        run(["--source", str(tmp_path / "clip.avi"), "--json", "--save", str(tmp_path / "out.mp4")], pipeline)
        == 0
    )
    records = check_json_lines(capsys.readouterr().out)
    assert [r["frame"] for r in records] == list(range(15))
    assert [read_index(image) for image in pipeline.seen] == list(range(15))
    saved = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    assert saved.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    saved.release()


def test_ctrl_c_stops_cleanly_and_finalizes_the_video(tmp_path: Path, scenes_dir: Path, capsys) -> None:
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 12))
    pipeline = FakePipeline(interrupt_on=5)
    assert run(["--source", str(tmp_path / "clip.avi"), "--save", str(tmp_path / "out.avi")], pipeline) == 0
    assert "stopped by the user" in capsys.readouterr().err
    saved = cv2.VideoCapture(str(tmp_path / "out.avi"))
    frames = []
    while (got := saved.read())[0]:
        frames.append(got[1])
    saved.release()
    assert len(frames) == 5
    assert [read_index(f) for f in frames] == list(range(5))


def test_a_signal_asks_for_a_stop_and_a_second_one_forces_it() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with cli.StopRequest().installed() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_failing_frame_is_counted_and_the_batch_goes_on(tmp_path: Path, capsys) -> None:
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.zeros((16, 16, 3), np.uint8))
    assert run(["--source", str(tmp_path), "--json"], FakePipeline(fail_on=1)) == 0
    captured = capsys.readouterr()
    assert [Path(r["source"]).name for r in check_json_lines(captured.out)] == ["0.png", "2.png"]
    assert "skipped 1: processing failed (RuntimeError)" in captured.err


def test_frames_without_faces_still_give_json_and_a_summary(tmp_path: Path, capsys) -> None:
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((16, 16, 3), k, np.uint8))
    assert (
        run(
            ["--source", str(tmp_path), "--json", "--sort-into", str(tmp_path / "s")],
            FakePipeline(faceless=True),
        )
        == 0
    )
    captured = capsys.readouterr()
    assert [r["faces"] for r in check_json_lines(captured.out)] == [[], []]
    assert "2 images processed, 0 faces (none)" in captured.err
    assert "2 detections smaller than the minimum face size ignored" in captured.err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [LOCK_FILE, "manifest.csv"]


def test_nothing_readable_exits_1(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    assert run(["--source", str(tmp_path)]) == 1
    (tmp_path / "a.jpg").unlink()
    assert run(["--source", str(tmp_path)]) == 1
    assert "no files in" in capsys.readouterr().err


def flaky_camera(monkeypatch, first_frames: int) -> list[str]:
    """``open_capture`` gives one capture with ``first_frames`` frames, then every reopen fails."""
    opened: list[str] = []

    def open_capture(spec, size=None, picamera2_cls=None):
        opened.append(spec)
        if len(opened) > 1:
            raise CameraError(f"camera {spec} cannot be opened")
        return FakeCapture(first_frames, period=0.002)

    monkeypatch.setattr("edgemask.app.sources.open_capture", open_capture)
    return opened


def test_camera_that_stops_delivering_reconnects_then_exits(monkeypatch, capsys) -> None:
    opened = flaky_camera(monkeypatch, first_frames=20)
    assert run(["--camera", "0", "--json", "--retries", "3", "--retry-delay", "0.001"]) == 1
    captured = capsys.readouterr()
    records = check_json_lines(captured.out)
    frames = [r["frame"] for r in records]
    assert frames == sorted(frames) and frames[-1] == 19
    assert {r["source"] for r in records} == {"0"}
    assert len(opened) == 4
    assert "stopped: no frames after 3 reconnect attempts" in captured.err


def test_camera_that_cannot_be_opened_exits_2(monkeypatch, capsys) -> None:
    def refuse(spec, size=None, picamera2_cls=None):
        raise CameraError(f"camera {spec} cannot be opened")

    monkeypatch.setattr("edgemask.app.sources.open_capture", refuse)
    assert run(["--camera", "3"]) == 2
    assert "error: camera 3 cannot be opened" in capsys.readouterr().err


def test_picam_without_picamera2_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setitem(__import__("sys").modules, "picamera2", None)
    assert run(["--camera", "picam"]) == 2
    assert "python3-picamera2" in capsys.readouterr().err


def test_picam_through_the_cli_with_a_stand_in(monkeypatch, capsys) -> None:
    monkeypatch.setattr("edgemask.app.camera.load_picamera2", lambda: FakePicamera2)
    assert run(["--camera", "picam", "--camera-size", "320x240", "--json", "--max-frames", "3"]) == 0
    records = check_json_lines(capsys.readouterr().out)
    assert len(records) == 3
    assert {(r["source"], r["width"], r["height"]) for r in records} == {("picam", 320, 240)}
    assert FakePicamera2.instances[-1].closed


def test_camera_rejects_files(tmp_path: Path, capsys) -> None:
    assert run(["--camera", str(tmp_path)]) == 2
    assert "expected a camera index" in capsys.readouterr().err


def test_max_frames_and_live_video_saving(monkeypatch, tmp_path: Path, capsys) -> None:
    flaky_camera(monkeypatch, first_frames=1000)
    out = tmp_path / "cam.avi"
    assert run(["--camera", "0", "--max-frames", "4", "--save", str(out), "--save-fps", "20"]) == 0
    saved = cv2.VideoCapture(str(out))
    ok, image = saved.read()
    assert ok and image.shape == (48, 160, 3)
    assert saved.get(cv2.CAP_PROP_FPS) == pytest.approx(20)
    saved.release()
    assert "4 frames processed" in capsys.readouterr().err


SLOW_RUN = """
import sys, time
from runtime_fakes import FakePipeline
from edgemask.app.cli import main

class Slow(FakePipeline):
    def infer(self, image):
        time.sleep(0.05)
        return super().infer(image)

sys.exit(main(sys.argv[1:], make_pipeline=lambda a: Slow()))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signalled_process_finalizes_its_video(tmp_path: Path, scenes_dir: Path, sig: int) -> None:
    write_video(tmp_path / "clip.avi", scene_images(scenes_dir, 100))
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    argv = [
        sys.executable,
        "-c",
        SLOW_RUN,
        "--source",
        str(tmp_path / "clip.avi"),
        "--json",
        "--save",
        str(out),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(3):
        proc.stdout.readline()
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped by the user" in err
    written = 3 + len(rest.splitlines())
    assert written < 100
    saved = cv2.VideoCapture(str(out))
    frames = []
    while (got := saved.read())[0]:
        frames.append(read_index(got[1]))
    saved.release()
    assert frames == list(range(written))


def test_auto_precision_is_the_measured_fastest_per_architecture_and_model(
    tmp_path: Path, monkeypatch
) -> None:
    assert [default_precision(m, "x86_64") for m in ("yunet", "res10", "classifier")] == [
        "fp32",
        "int8",
        "int8",
    ]
    assert default_precision("yunet", "AMD64") == "fp32"  # Windows' name for x86-64
    assert {default_precision(m, arch) for m in MODELS for arch in ("aarch64", "arm64", "armv7l")} == {"int8"}
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    for name in (
        "face_detector_yunet_fp32.tflite",
        "face_detector_yunet_int8.tflite",
        "mask_classifier_int8.tflite",
    ):
        (tmp_path / name).write_bytes(b"")
    assert resolve_model("yunet", "tflite", "detector").name == "face_detector_yunet_fp32.tflite"
    assert resolve_model("classifier", "tflite", "classifier").name == "mask_classifier_int8.tflite"
    assert resolve_model("yunet", "tflite", "detector", "int8").name == "face_detector_yunet_int8.tflite"
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert resolve_model("yunet", "tflite", "detector").name == "face_detector_yunet_int8.tflite"
