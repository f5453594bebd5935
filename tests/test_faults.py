"""The fault suite: the ways new users broke the commands, through the real command lines, each checked
for its exit code, its one-line message and what is on disk afterwards.

Bad images go through the real int8 pipeline (loaded once); sorting and option cases use the stand-in
pipeline; damaged models are copies of the committed ones, sealed with a checksum as the exporter now
writes them, then cut or flipped.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from runtime_fakes import FakePipeline
from test_sources import write_bad_and_odd_images

from edgemask import __version__
from edgemask.app import cli
from edgemask.app.sorting.manifest import LOCK_FILE, MANIFEST
from edgemask.app.sources import ZERO_BYTE
from edgemask.core.metadata import ZIP_MEMBER_HEADER, read_metadata
from edgemask.export import cli as export_cli
from edgemask.export import tflite as tflite_export
from edgemask.training.cli import eval_main

TESTS = Path(__file__).resolve().parent
MODELS = TESTS.parent / "models"
UNDECODABLE_READ = "not a decodable image (corrupt, or too large)"
IMAGE_CASES = {
    "empty.jpg": ZERO_BYTE,
    "text.jpg": UNDECODABLE_READ,
    "truncated.jpg": UNDECODABLE_READ,
    "huge.png": UNDECODABLE_READ,  # a PNG header claiming 60000×60000 pixels
    "gray.png": "",
    "rgba.png": "",
    "deep16.png": "",
    "rotated.jpg": "",  # EXIF orientation 6: comes out upright (width and height swapped)
    "cmyk.jpg": "",
    "one_pixel.png": "",
    "large.jpg": "",  # 4000×3000
}


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory, scenes_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("images")
    scene = sorted((scenes_dir / "images").iterdir())[0]
    write_bad_and_odd_images(folder, scene)
    Image.open(scene).convert("CMYK").save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "large.jpg"), cv2.resize(cv2.imread(str(scene)), (4000, 3000)))
    return folder


@pytest.fixture(scope="module")
def real_pipeline():
    """The default int8 TFLite pipeline from models/."""
    return cli.load_pipeline(cli.build_parser().parse_args(["--camera", "0"]))


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_bad_and_odd_images(bad_images: Path, real_pipeline, name: str, capsys) -> None:
    reason = IMAGE_CASES[name]
    code = cli.main(["--source", str(bad_images / name), "--json"], make_pipeline=lambda a: real_pipeline)
    captured = capsys.readouterr()
    if reason:
        assert code == 1
        assert captured.out == ""
        assert f"skipped {bad_images / name}: {reason}" in captured.err
        return
    assert code == 0
    (record,) = (json.loads(line) for line in captured.out.splitlines())
    h, w = cv2.imread(str(bad_images / name), cv2.IMREAD_UNCHANGED).shape[:2]
    expected = (h, w) if name == "rotated.jpg" else (w, h)  # cv2.IMREAD_UNCHANGED ignores EXIF
    assert (record["width"], record["height"]) == expected
    for face in record["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= record["width"] and 0 <= y1 < y2 <= record["height"]


def sealed_copy(name: str, folder: Path) -> Path:
    """A committed model as the current exporter writes it (flatbuffer + metadata with a checksum)."""
    data = (MODELS / name).read_bytes()
    meta = read_metadata(MODELS / name)
    flatbuffer = data[: meta.checksum.length if meta.checksum else data.rfind(ZIP_MEMBER_HEADER)]
    path = folder / name
    tflite_export.write(flatbuffer, path, replace(meta, edgemask_version=__version__, checksum=None))
    return path


def damaged(path: Path, how: str) -> Path:
    data = path.read_bytes()
    if how == "flipped":
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]
    else:
        data = data[: len(data) // 2]
    out = path.with_name(f"{how}_{path.name}")
    out.write_bytes(data)
    return out


@pytest.mark.parametrize(
    ("flag", "name", "how"),
    [
        ("--detector", "face_detector_yunet_int8.tflite", "flipped"),
        ("--classifier", "mask_classifier_int8.tflite", "flipped"),
        ("--detector", "face_detector_yunet_int8.tflite", "truncated"),
        ("--classifier", "mask_classifier_int8.onnx", "truncated"),
        ("--detector", "face_detector_res10_int8.onnx", "truncated"),
    ],
)
def test_damaged_models_are_refused_by_edgemask_run(
    tmp_path: Path, bad_images: Path, flag: str, name: str, how: str, capsys
) -> None:
    pytest.importorskip("ai_edge_litert")
    model = sealed_copy(name, tmp_path) if name.endswith(".tflite") else tmp_path / name
    if name.endswith(".onnx"):
        model.write_bytes((MODELS / name).read_bytes())
    bad = damaged(model, how)
    backend = ["--backend", "onnx"] if name.endswith(".onnx") else []
    out = tmp_path / "sorted"
    argv = ["--source", str(bad_images / "gray.png"), flag, str(bad), *backend, "--sort-into", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"edgemask-run: error: {bad}: damaged or truncated model file {err[0].split('file ', 1)[1]}"
    ]
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("mask_classifier_int8.onnx", "damaged or truncated model file"),
        # A .keras file needs the [train] extra; without it edgemask-eval names the extra instead.
        pytest.param("mask_classifier.keras", "damaged, truncated", marks=pytest.mark.tf),
    ],
)
def test_edgemask_eval_names_damaged_models(tmp_path: Path, capsys, source: str, says: str) -> None:
    crops = tmp_path / "crops"
    for label in ("with_mask", "without_mask"):
        (crops / label).mkdir(parents=True)
        cv2.imwrite(str(crops / label / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    model = tmp_path / f"classifier{Path(source).suffix}"
    data = (MODELS / source).read_bytes()
    model.write_bytes(data[: min(1_000_000, len(data) // 10)])
    assert eval_main(["--model", str(model), "--data", str(crops)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"edgemask-eval: error: {model}: ") and says in line
    assert "File not found" not in line


@pytest.mark.tf
def test_edgemask_export_names_a_damaged_classifier(tmp_path: Path, caplog) -> None:
    keras_copy = tmp_path / "classifier.keras"
    keras_copy.write_bytes((MODELS / "mask_classifier.keras").read_bytes()[:1_000_000])
    out = tmp_path / "models"
    argv = ["--models", "classifier", "--classifier", str(keras_copy), "--out", str(out)]
    assert export_cli.main(argv) == 2
    assert f"{keras_copy}: not a loadable Keras model: damaged, truncated" in caplog.text
    assert not out.exists()


def sort_rows(out: Path) -> list[dict]:
    with open(out / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def test_same_names_on_another_day_are_all_sorted(tmp_path: Path) -> None:
    for day, value in (("day1", 30), ("day2", 220)):
        (tmp_path / day).mkdir()
        for k in range(3):
            cv2.imwrite(str(tmp_path / day / f"IMG_{k}.jpg"), np.full((30, 40, 3), value + k, np.uint8))
    out = tmp_path / "sorted"
    for day in ("day1", "day2"):
        argv = ["--source", str(tmp_path / day), "--sort-into", str(out), "--quiet"]
        assert cli.main(argv, make_pipeline=lambda a: FakePipeline()) == 0
    rows = sort_rows(out)
    assert len(rows) == 12 and len({r["sha256"] for r in rows}) == 6
    assert len({r["crop"] for r in rows}) == 12 == len(list(out.rglob("*.jpg")))


RACER = """
import sys, time
sys.path.insert(0, {tests!r})
from runtime_fakes import FakePipeline
from edgemask.app.cli import main


class Slow(FakePipeline):
    def infer(self, image):
        time.sleep(0.25)
        return super().infer(image)


sys.exit(main(["--source", {source!r}, "--sort-into", {out!r}, "--quiet"], make_pipeline=lambda a: Slow()))
"""


def test_two_runs_into_one_folder_at_once_duplicate_nothing(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    source.mkdir()
    for k in range(6):
        cv2.imwrite(str(source / f"{k}.png"), np.full((30, 40, 3), 20 * k, np.uint8))
    out = tmp_path / "sorted"
    script = textwrap.dedent(RACER.format(tests=str(TESTS), source=str(source), out=str(out)))
    runs = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        if code == 2:  # the loser stopped at once, in one line
            assert err.strip().startswith(
                f"edgemask-run: error: {out} is in use by another edgemask-run (pid"
            )
            assert len(err.strip().splitlines()) == 1
    rows = sort_rows(out)
    assert sorted(r["source"] for r in rows) == sorted(
        str(source / f"{k}.png") for k in range(6) for _ in range(2)
    )
    crops = sorted(p.name for p in out.rglob("*.jpg"))
    assert len(crops) == 12 and not any("-1" in name for name in crops)
    assert {p.name for p in out.iterdir()} == {LOCK_FILE, MANIFEST, "without_mask"}  # all dark: no masks


@pytest.mark.parametrize("argv", [["--detector-size", "1"], ["--detector-size", "20000"], ["--threads", "0"]])
def test_sizes_that_cannot_work_are_usage_errors(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--camera", "0", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("usage: edgemask-run")


def test_costly_sizes_are_warned_about_once(tmp_path: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 20, 3), np.uint8))
    argv = ["--source", str(tmp_path / "a.png"), "--detector-size", "2560"]
    assert cli.main(argv, make_pipeline=lambda a: FakePipeline()) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "2560" in line] == [
        "edgemask-run: --detector-size 2560: 16x the pixels of a 640-px input; expect about 16x the "
        "detector's time and memory per frame"
    ]


def test_runtime_log_lines_stay_off_the_terminal(tmp_path: Path, scenes_dir: Path) -> None:
    """LiteRT's C++ INFO line would tear the progress bar; --quiet leaves stderr empty on success."""
    for k, scene in enumerate(sorted((scenes_dir / "images").iterdir())[:2]):
        (tmp_path / f"{k}.jpg").write_bytes(scene.read_bytes())
    env = {**os.environ, "EDGEMASK_MODELS": str(MODELS)}
    run = [sys.executable, "-m", "edgemask.app.cli", "--source", str(tmp_path), "--json"]
    loud = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    quiet = subprocess.run([*run, "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert loud.returncode == quiet.returncode == 0
    assert "INFO" not in loud.stderr and "2 images processed" in loud.stderr
    assert quiet.stderr == "" and len(quiet.stdout.splitlines()) == 2
