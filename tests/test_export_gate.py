"""Pieces of the exporter that need no TensorFlow: detection matching, staging, CLI planning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.cli import build_parser, parse_size, plan_jobs
from export.gate import Matching
from export.staging import install, staged


def dets(*rows: tuple[float, float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 5)


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


def test_parse_size_is_width_by_height() -> None:
    assert parse_size("300") == (300, 300)
    assert parse_size("480x360") == (360, 480)
    for bad in ("abc", "10x10", "1x2x3"):
        with pytest.raises(Exception, match="bad size"):
            parse_size(bad)


def test_int8_flag_adds_int8_and_onnx_has_no_fp16() -> None:
    args = build_parser().parse_args(["--int8"])
    jobs = {(j.model, j.format, j.precision) for j in plan_jobs(args)}
    assert len(jobs) == 2 * (3 + 2)
    assert ("detector", "onnx", "fp16") not in jobs
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
