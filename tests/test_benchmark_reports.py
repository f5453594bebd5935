"""The benchmarks' pure reporting parts on hand-made numbers: issue #10's target lines, the per-family
options, ground-truth crops, the fastest-variant lines, the speed checks and the Markdown/JSON output."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgemask.core.detectors import DetectorOptions
from edgemask.evaluation.accuracy import TARGETS, family_options, ground_truth_crops, target_lines
from edgemask.evaluation.latency import check_lines, fastest_lines, frame_sizes
from edgemask.evaluation.report import table, write_json
from edgemask.evaluation.systems import edgemask_systems, require_peers
from edgemask.evaluation.voc import Scene
from edgemask.extras import EXTRAS
from edgemask.labels import IGNORE


def summary(map_=0.75, recall=0.8, small=0.6, far=0.01, frr=0.02, precision=0.8) -> dict:
    return {
        "map": map_,
        "recall": recall,
        "precision": precision,
        "recall_by_size": {"<16": {"recall": small}},
        "found_faces": {"far": far, "frr": frr},
    }


def test_targets_of_issue_10_pass_and_fail_at_their_bounds():
    lines = target_lines({"ours": summary()}, "ours")
    assert [line.split(":")[1].strip() for line in lines] == ["PASS"] * 6
    bounds = summary(map_=0.70, recall=0.78, small=0.55, far=0.02, frr=0.03, precision=0.70)
    assert all(": PASS:" in line for line in target_lines({"ours": bounds}, "ours"))
    worse = summary(map_=0.69, recall=0.77, small=0.54, far=0.021, frr=0.031, precision=0.69)
    assert all(": FAIL:" in line for line in target_lines({"ours": worse}, "ours"))
    assert "FAIL: FAR on found faces –" in TARGETS[3].line(summary(far=float("nan")))
    assert target_lines({}, "ours")[0].startswith("NOT CHECKED")


def test_small_face_pass_is_a_res10_option_only():
    options, setting = family_options("yunet", 0.4, 480, 0)
    assert options == DetectorOptions(size=480, small_face_size=None, conf=0.4)
    assert setting == "conf 0.4, size 480"
    options, setting = family_options("res10", None, None, 0)
    assert options == DetectorOptions(small_face_size=0)
    assert setting == "small-face off"
    assert family_options("res10", None, None, None) == (DetectorOptions(), "")


def test_ground_truth_crops_are_the_scored_faces_only():
    image = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    boxes = np.array([[10, 10, 30, 30], [50, 20, 90, 60], [0, 0, 5, 5]], float)
    scene = Scene("s", Path("s"), image, boxes, (), np.array([1, IGNORE, 0]))
    faces, labels = ground_truth_crops([scene], margin=0.0)
    assert labels.tolist() == [1, 0]
    assert [f.shape[:2] for f in faces] == [(20, 20), (5, 5)]
    np.testing.assert_array_equal(faces[0], image[10:30, 10:30])


def latency_row(model: str, fmt: str, median: float, threads: int = 1) -> dict:
    return {"model": model, "format": fmt, "threads": threads, "median": median}


def test_fastest_line_names_the_minimum_median_at_one_thread():
    rows = [
        latency_row("yunet", "tflite int8", 9.0),
        latency_row("yunet", "tflite fp32", 6.0),
        latency_row("yunet", "onnx int8", 5.0),
        latency_row("yunet", "onnx fp32", 7.5),
        latency_row("yunet", "tflite int8", 1.0, threads=2),  # another thread count: not a contender
        latency_row("classifier", "tflite int8", 2.0),
    ]
    yunet, classifier = fastest_lines(rows)
    assert yunet.startswith("yunet: fastest at 1 thread(s): onnx int8 (5.00 ms median)")
    assert "tflite int8 does not beat fp32 (9.00 vs 6.00 ms: 0.67x)" in yunet
    assert "onnx int8 beats fp32 (5.00 vs 7.50 ms: 1.50x)" in yunet
    assert classifier == "classifier: fastest at 1 thread(s): tflite int8 (2.00 ms median)"


def test_speed_checks():
    e2e = [{"system": "ours", "mean": 10.0, "speedup": 12.0}, {"system": "classic", "mean": 120.0}]
    overhead = {"file": "c.tflite", "infer_median_ms": 1.3, "bare_invoke_median_ms": 1.0, "ratio": 1.3}
    speed, extra = check_lines(e2e, overhead, "ours", "classic", threads=1)
    assert speed.startswith("PASS: ours 10.0 ms/frame vs classic 120.0 ms/frame") and "12.0x" in speed
    assert extra.startswith("FAIL: c.tflite") and "1.30x" in extra
    e2e[0]["speedup"] = 9.9
    assert check_lines(e2e, None, "ours", "classic", 1)[0].startswith("FAIL")
    assert check_lines(e2e, None, "ours", "classic", 2)[0].startswith("NOT CHECKED")
    assert check_lines(e2e, None, "ours", "classic", 1)[1].startswith("NOT CHECKED")


def test_frame_sizes():
    frames = [np.zeros((h, w, 3)) for h, w in ((480, 640), (100, 200), (480, 640))]
    assert frame_sizes(frames) == "2 sizes from 200x100 to 640x480"
    assert frame_sizes(frames[:1]) == "640x480"


def test_tables_align_names_left_and_numbers_right():
    assert table(["system", "setting", "ms"], [["a", "b", "1.0"]], left=2) == [
        "| system | setting | ms |",
        "|---|---|---:|",
        "| a | b | 1.0 |",
    ]


def test_json_holds_nan_as_null(tmp_path: Path):
    path = tmp_path / "r.json"
    write_json(path, {"map": float("nan"), "sizes": (1, 2), "where": Path("x"), "ok": math.inf})
    assert json.loads(path.read_text()) == {"map": None, "sizes": [1, 2], "where": "x", "ok": None}


def test_benchmarks_name_the_peers_extra_before_any_work(monkeypatch, capsys):
    parser = argparse.ArgumentParser(prog="latency.py")
    monkeypatch.setitem(EXTRAS, "peers", ("edgemask_no_such_module",))
    with pytest.raises(SystemExit) as stop:
        require_peers(parser)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    expected = "no_such_module, not installed here: pip install 'edgemask[peers]', or pass --no-peers"
    assert expected in err
    monkeypatch.setitem(EXTRAS, "peers", ("json",))
    require_peers(parser)  # everything importable: no stop


def test_a_detector_variant_without_its_classifier_runs_with_the_default_one(tmp_path: Path):
    for name in (
        "face_detector_yunet_int8.tflite", "face_detector_yunet_fp32.onnx", "mask_classifier_int8.tflite"
    ):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    systems, notes = edgemask_systems(tmp_path, ["yunet"], ["tflite int8", "onnx fp32", "tflite fp16"])
    assert [s.name for s in systems] == [
        "edgemask yunet tflite int8",
        "edgemask yunet onnx fp32 + classifier tflite int8",
    ]
    assert systems[1].files(tmp_path) == (
        tmp_path / "face_detector_yunet_fp32.onnx",
        tmp_path / "mask_classifier_int8.tflite",
    )
    (note,) = notes
    assert note == "edgemask yunet tflite fp16 + classifier tflite int8: skipped, missing " + (
        "face_detector_yunet_fp16.tflite"
    )
