"""Smoke runs of benchmarks/latency.py and benchmarks/accuracy.py on 2-4 scenes with the committed int8
models and without the TensorFlow peers, checked against facts that hold whatever the numbers are: file
sizes on disk, face counts in the annotations, recall that cannot rise with the threshold, a sweep row at
a threshold equal to a run at that threshold, verdicts that agree with the numbers beside them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, REPO

from edgemask.app import autoselect
from edgemask.core.formats import DEFAULT_VARIANT, Variant
from edgemask.evaluation.latency import peak_memory_mb
from edgemask.evaluation.sweep import worst_half_map
from edgemask.evaluation.systems import default_system
from edgemask.evaluation.voc import load_scenes

pytest.importorskip("matplotlib", reason="the benchmarks are workstation tools: pip install '.[bench]'")

RES10 = DEFAULT_VARIANT.path(MODELS, "res10")
YUNET = DEFAULT_VARIANT.path(MODELS, "yunet")
CLASSIFIER = DEFAULT_VARIANT.path(MODELS, "classifier")
pytestmark = pytest.mark.skipif(
    not (RES10.is_file() and CLASSIFIER.is_file()), reason="needs the committed int8 models in models/"
)
INT8 = ["--formats", "tflite int8", "onnx int8"]


def run_script(name: str, *args: str) -> str:
    # The measured file choice is cached in the test session's folder (conftest), not the user's.
    cache_home = autoselect.default_cache_path().parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(cache_home)}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), "--models", str(MODELS), *args],
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
    args = ["--quick", "--no-peers", "--no-memory", *INT8, "--json-out", str(out), "--plot", str(png)]
    stdout = run_script("latency.py", *args)
    result = json.loads(out.read_text())
    rows = result["models"]
    assert {(r["model"], r["format"]) for r in rows} >= {
        ("res10", "tflite int8"),
        ("classifier", "onnx int8"),
    }
    for r in rows:
        assert r["threads"] == 1 and 0 < r["min"] <= r["median"] <= r["p90"]
        path = Variant(*r["format"].split()).path(MODELS, r["model"])
        assert r["size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    # res10 at its default operating point: a 224² squashed pass and a 512-px small-face pass.
    res10 = next(r for r in rows if r["model"] == "res10")
    squashed, small = res10["inputs"].split(" + ")
    assert squashed == "224x224" and max(int(s) for s in small.split("x")) == 512
    # Each model's fastest line names its row with the lowest median.
    for line in result["fastest"]:
        model = line.split(":")[0]
        best = min((r for r in rows if r["model"] == model), key=lambda r: r["median"])
        assert f": {best['format']} ({best['median']:.2f} ms median)" in line
        assert line in stdout
    info = result["end_to_end_info"]
    assert info["frames"] == 2 and info["annotated_faces_per_frame"] >= 3
    e2e = {r["system"]: r for r in result["end_to_end"]}
    assert "edgemask res10 tflite int8, small-face off" in e2e
    assert all(r["speedup"] is None for r in e2e.values())  # no classic recipe to compare with
    overhead = result["classifier_overhead"]
    assert overhead["ratio"] == pytest.approx(overhead["infer_median_ms"] / overhead["bare_invoke_median_ms"])
    speed, classifier = result["checks"]
    assert speed.startswith("NOT CHECKED")
    # The header names the CPU's SIMD extensions and the files edgemask-run picks, with every time.
    assert f"- SIMD: {result['machine']['simd']}" in stdout and "AVX2 " in stdout + "NEON "
    yunet, classifier_choice = result["machine"]["file_choice"]
    assert yunet.startswith("yunet: face_detector_yunet_") and classifier_choice.startswith("classifier: ")
    assert all(line in stdout for line in result["machine"]["file_choice"])
    assert classifier.startswith("PASS" if overhead["ratio"] <= 1.2 else "FAIL")
    assert png.stat().st_size > 0


def test_latency_help_names_each_default_once():
    text = run_script("latency.py", "--help")
    options = " ".join(text.split("options:")[1].split())
    assert "(default: None)" not in options and "(default: False)" not in options
    assert "(default: scenes_dev from the assets)" in options and "(default: 100)" in options


@pytest.mark.parametrize("script", ["accuracy.py", "memory.py", "tracking.py", "distributed.py"])
def test_every_benchmark_help_names_each_default_once(script: str):
    text = " ".join(run_script(script, "--help").split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text)  # "(default: the file's) (default: None)"


def test_memory_probe_sees_the_model_loaded(scenes_dir: Path):
    # The classifier file holds ~3 MB of weights: loading and running it must raise the peak RSS by more.
    rise = peak_memory_mb(CLASSIFIER, "classifier", scenes_dir)
    assert rise is not None and rise > CLASSIFIER.stat().st_size / 1e6


def scored_faces(scenes_dir: Path, n: int) -> int:
    return sum(int((s.labels >= 0).sum()) for s in load_scenes(scenes_dir, limit=n))


def test_accuracy_quick(tmp_path: Path, scenes_dir: Path):
    out, png = tmp_path / "accuracy.json", tmp_path / "accuracy.pr.png"  # the PNG goes beside the JSON
    default = default_system()  # what edgemask-run runs on this CPU: its files' variant is scored too
    formats = sorted({*INT8[1:], default.variant.name})
    # The default's own detector file, given by path, must score exactly as the committed system.
    given = default.files(MODELS)[0]
    stdout = run_script(
        "accuracy.py", "--quick", "--no-peers", "--formats", *formats, "--json-out", str(out),
        "--detector-files", str(given),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["detection"][f"edgemask {given.name}"] == result["detection"][default.name]
    for label in ("mask", "no_mask"):
        assert f"| {default.name} | {label} |" in stdout
    faces = scored_faces(scenes_dir, 2)
    for name, s in result["detection"].items():
        assert s["images"] == 2 and s["faces"] == faces, name
        assert sum(c["faces"] for c in s["recall_by_class"].values()) == faces
        assert s["found_faces"]["n"] <= faces
        assert f"| {name} |" in stdout
    for name, crops in result["crops"].items():
        assert crops["n"] == faces, name  # the same scored faces, cut from the ground truth
    checks = result["checks"]
    s = result["detection"][default.name]
    far, frr = s["found_faces"]["far"], s["found_faces"]["frr"]
    assert len(checks) == 6 and all(line.startswith(f"{default.name}: ") for line in checks)
    assert (": PASS:" in checks[3]) == (far is not None and far <= 0.02)
    assert (": PASS:" in checks[4]) == (frr is not None and frr <= 0.03)
    assert png.stat().st_size > 0


def test_sweep_quick(tmp_path: Path, scenes_dir: Path):
    out = tmp_path / "sweep.json"
    run_script(
        "accuracy.py", "--sweep", "--detectors", "res10", "--limit", "4", "--input-sizes", "300",
        "--small-face-sizes", "0", "640", "--margins", "0", "0.2", "--res10-confs", "0.6", "0.4",
        "--classic-ms", "400", "--time-every", "2", "--json-out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    rows = result["sweep"]
    assert [(r["small_face_size"], r["margin"], r["conf"]) for r in rows] == [
        (size, margin, conf) for size in (0, 640) for margin in (0, 0.2) for conf in (0.4, 0.6)
    ]
    assert result["timed_scenes"] == 2  # --time-every 2 on 4 scenes: scenes 0 and 2
    for r in rows:
        assert r["even"]["images"] + r["odd"]["images"] == result["scenes"] == 4
        assert r["even"]["images"] == r["odd"]["images"] == 2
    by = {(r["small_face_size"], r["margin"], r["conf"]): r for r in rows}
    for size in (0, 640):
        for half in ("even", "odd"):
            # A higher threshold keeps a subset of the faces, so recall cannot rise ...
            assert by[size, 0, 0.6][half]["recall"] <= by[size, 0, 0.4][half]["recall"]
            # ... and the crop margin changes what the classifier sees, never which faces are found.
            for key in ("recall", "recall_lt16", "precision"):
                assert by[size, 0, 0.4][half][key] == by[size, 0.2, 0.4][half][key]
    # The default line obeys its rule: the fastest row meeting every target, then the best worst half.
    default = next(line for line in result["verdict"] if line.startswith("DEFAULT"))
    eligible = [r for r in rows if r["meets_targets"]]
    if eligible:
        fastest = min(r["ms"] for r in eligible)
        tied = [r for r in eligible if r["ms"] == fastest]
        chosen = max(tied, key=worst_half_map)
        assert default.startswith(f"DEFAULT: res10 {chosen['setting']}, conf {chosen['conf']:g}")
    else:
        assert default.startswith("DEFAULT: no setting meets")
    floors = {"map": 0.70, "recall": 0.78, "recall_lt16": 0.55, "precision": 0.70}
    ceilings = {"far": 0.02, "frr": 0.03}
    for r in rows:
        meets = all(
            all(h[k] is not None and h[k] >= v for k, v in floors.items())
            and all(h[k] is not None and h[k] <= v for k, v in ceilings.items())
            for h in (r["even"], r["odd"])
        )
        assert r["meets_targets"] == meets


def test_sweep_row_equals_a_run_at_that_threshold(tmp_path: Path, scenes_dir: Path):
    """Filtering the 0.4 run at 0.6 finds the same faces as the pipeline run at 0.6 (greedy NMS)."""
    sweep, direct = tmp_path / "sweep.json", tmp_path / "direct.json"
    run_script(
        "accuracy.py", "--sweep", "--detectors", "res10", "--limit", "4", "--input-sizes", "300",
        "--small-face-sizes", "640", "--res10-confs", "0.4", "0.6", "--classic-ms", "400",
        "--json-out", str(sweep),
    )  # fmt: skip
    run_script(
        "accuracy.py", "--detectors", "res10", "--formats", "tflite int8", "--limit", "4", "--no-peers",
        "--conf", "0.6", "--detector-size", "300", "--small-face-size", "640", "--json-out", str(direct),
    )  # fmt: skip
    row = next(r for r in json.loads(sweep.read_text())["sweep"] if r["conf"] == 0.6)
    (summary,) = json.loads(direct.read_text())["detection"].values()
    assert row["even"]["found"] + row["odd"]["found"] == summary["found_faces"]["n"]
    faces = scored_faces(scenes_dir, 4)
    found_by_halves = sum(row[h]["recall"] * n for h, n in half_faces(scenes_dir, 4).items())
    assert found_by_halves == pytest.approx(summary["recall"] * faces)


def half_faces(scenes_dir: Path, n: int) -> dict[str, int]:
    scenes = list(load_scenes(scenes_dir, limit=n))
    return {
        "even": sum(int((s.labels >= 0).sum()) for s in scenes[0::2]),
        "odd": sum(int((s.labels >= 0).sum()) for s in scenes[1::2]),
    }
