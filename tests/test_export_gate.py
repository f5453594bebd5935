"""Pieces of the exporter that need no TensorFlow: detection matching, staging, CLI planning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemask.argtypes import size_hw
from edgemask.core.detectors import Detections
from edgemask.core.formats import FORMATS, MODELS
from edgemask.export.cli import build_parser, plan_jobs
from edgemask.export.gate import Matching
from edgemask.export.staging import install, staged


def dets(*rows: tuple[float, ...]) -> Detections:
    """Rows ``[x1, y1, x2, y2, score]``, or with ten landmark coordinates after the score."""
    a = np.array(rows, np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 5), np.float32)
    return Detections(a[:, :4], a[:, 4], a[:, 5:] if a.shape[1] > 5 else None)


def test_matching_strict_parity_counts_errors() -> None:
    m = Matching()
    reference = dets((10, 10, 50, 50, 0.9), (100, 100, 140, 150, 0.6), (0, 0, 5, 5, 0.3))
    candidate = dets((10.5, 10, 50, 50.25, 0.9004), (100, 100, 140, 150, 0.5995))
    m.add(reference, candidate, threshold=0.5, slack=1e-3)
    assert (m.required, m.found, m.extra) == (2, 2, 0)  # the 0.3 box is below the threshold
    assert m.box_error == pytest.approx(0.5)
    assert m.score_error == pytest.approx(5e-4, abs=1e-6)  # 0.6 vs 0.5995


def test_matching_borderline_score_is_not_a_miss_but_a_moved_box_is() -> None:
    m = Matching()
    reference = dets((10, 10, 50, 50, 0.5003))
    # Just under the threshold, within the score tolerance: still found.
    m.add(reference, dets((10, 10, 50, 50, 0.4999)), threshold=0.5, slack=1e-3)
    assert (m.required, m.found) == (1, 1)
    # IoU of [10,50] vs [40,80] squares is 100/1500 < 0.5: missed, and the candidate is extra.
    m.add(reference, dets((40, 40, 80, 80, 0.9)), threshold=0.5, slack=1e-3)
    assert (m.required, m.found, m.extra) == (2, 1, 1)
    assert m.recall == 0.5


def test_matching_with_nothing_to_find_is_perfect_recall() -> None:
    m = Matching()
    m.add(dets(), dets((0, 0, 10, 10, 0.9)), threshold=0.5, slack=0.0)
    assert (m.required, m.recall, m.extra) == (0, 1.0, 1)


def test_matching_measures_landmark_error() -> None:
    m = Matching()
    lm = tuple(float(v) for v in range(10))
    moved = tuple(v + (1.5 if k == 7 else 0.0) for k, v in enumerate(lm))
    m.add(dets((0, 0, 20, 20, 0.9, *lm)), dets((0, 0, 20, 20, 0.9, *moved)), threshold=0.5, slack=1e-3)
    assert (m.found, m.landmark_error) == (1, 1.5)


def test_size_hw_is_height_by_width() -> None:
    assert size_hw("300") == (300, 300)
    assert size_hw("480x360") == (360, 480)
    for bad in ("abc", "10x10", "1x2x3"):
        with pytest.raises(Exception, match="bad size"):
            size_hw(bad)


def test_int8_flag_adds_int8_and_onnx_has_no_fp16() -> None:
    args = build_parser().parse_args(["--int8"])
    jobs = {(j.model, j.format, j.precision) for j in plan_jobs(args)}
    assert len(jobs) == len(MODELS) * sum(len(f.precisions) for f in FORMATS.values()) == 4 * (3 + 2)
    assert ("yunet", "onnx", "fp16") not in jobs
    assert ("classifier", "tflite", "int8") in jobs
    flags = ["--models", "classifier", "--formats", "onnx", "--precisions", "int8"]
    narrow = build_parser().parse_args(flags)
    assert [(j.model, j.format, j.precision) for j in plan_jobs(narrow)] == [("classifier", "onnx", "int8")]


def test_staged_file_is_installed_atomically_or_removed(tmp_path: Path) -> None:
    final = tmp_path / "models" / "m_int8.tflite"
    with staged(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == ".tflite" and tmp.name.startswith(".")
        tmp.write_bytes(b"new")
        install(tmp, final)
    assert final.read_bytes() == b"new"
    with pytest.raises(RuntimeError), staged(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("conversion crashed")
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in final.parent.iterdir()) == ["m_int8.tflite"]
