"""Smoke runs of benchmarks/latency.py and benchmarks/accuracy.py in quick mode (2 scenes, a few runs),
without the TensorFlow peers; skipped until edgemask-export has written the int8 TFLite models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, REPO

pytest.importorskip("matplotlib", reason="the benchmarks are workstation tools: pip install '.[bench]'")

INT8 = [MODELS / "face_detector_int8.tflite", MODELS / "mask_classifier_int8.tflite"]
pytestmark = pytest.mark.skipif(
    not all(p.is_file() for p in INT8), reason="needs models/*_int8.tflite (run edgemask-export --int8)"
)


def run_script(name: str, *args: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_latency_quick(tmp_path: Path, scenes_dir: Path):
    out, png = tmp_path / "latency.json", tmp_path / "latency.png"
    stdout = run_script(
        "latency.py", "--quick", "--no-peers", "--no-memory", "--json-out", str(out), "--plot", str(png)
    )
    result = json.loads(out.read_text())
    int8 = [r for r in result["models"] if r["format"] == "tflite int8"]
    assert {r["model"] for r in int8} == {"detector", "classifier"}
    assert all(r["threads"] == 1 and 0 < r["min"] <= r["median"] <= r["p90"] for r in int8)
    assert all(r["size_mb"] > 0.1 for r in int8)
    e2e = {r["system"]: r for r in result["end_to_end"]}
    assert e2e["edgemask tflite int8"]["mean"] > 0
    assert result["end_to_end_info"]["frames"] == 2
    overhead = result["classifier_overhead"]
    assert overhead["ratio"] == pytest.approx(overhead["infer_median_ms"] / overhead["bare_invoke_median_ms"])
    assert "| edgemask tflite int8 |" in stdout
    assert any(line.startswith(("PASS: classifier", "FAIL: classifier")) for line in stdout.splitlines())
    assert png.stat().st_size > 0


def test_accuracy_quick(tmp_path: Path, scenes_dir: Path):
    out, png = tmp_path / "accuracy.json", tmp_path / "pr.png"
    stdout = run_script("accuracy.py", "--quick", "--no-peers", "--json-out", str(out), "--plot", str(png))
    result = json.loads(out.read_text())
    ours = result["detection"]["edgemask tflite int8"]
    assert ours["images"] == 2
    assert ours["faces"] + ours["ignored_faces"] > 0
    assert 0.0 <= ours["recall"] <= 1.0
    crops = result["crops"]["edgemask tflite int8 classifier"]
    assert crops["n"] == ours["faces"]  # the same two scenes' with/without-mask faces
    assert "### Classifiers alone on ground-truth crops" in stdout
    assert png.stat().st_size > 0


def test_sweep_quick(tmp_path: Path, scenes_dir: Path):
    out = tmp_path / "sweep.json"
    run_script(
        "accuracy.py", "--sweep", "--limit", "4", "--input-sizes", "300", "--small-face-sizes", "0", "640",
        "--margins", "0", "0.2", "--confs", "0.4", "0.6", "--json-out", str(out),
    )  # fmt: skip
    rows = json.loads(out.read_text())["sweep"]
    assert [(r["small_face_size"], r["margin"], r["conf"]) for r in rows] == [
        (size, margin, conf) for size in (None, 640) for margin in (0, 0.2) for conf in (0.4, 0.6)
    ]
    for r in rows:
        assert r["even"]["images"] == 2 and r["odd"]["images"] == 2
    by_setting = {(r["small_face_size"], r["margin"], r["conf"]): r for r in rows}
    for size in (None, 640):
        for half in ("even", "odd"):
            # A higher threshold keeps a subset of the faces, so recall cannot rise ...
            assert by_setting[size, 0, 0.6][half]["recall"] <= by_setting[size, 0, 0.4][half]["recall"]
            # ... and the crop margin changes what the classifier sees, never which faces are found.
            assert by_setting[size, 0, 0.4][half]["recall"] == by_setting[size, 0.2, 0.4][half]["recall"]
