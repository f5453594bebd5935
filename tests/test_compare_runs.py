"""scripts/compare_runs.py: the tolerances of the x86-64 vs arm64 comparison, on hand-made runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_runs.py"
spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def face(box, label="mask", score=0.9, face_score=0.8):
    return {"box": list(box), "label": label, "score": score, "face_score": face_score}


def write_run(path: Path, folder: str, faces_by_image: dict[str, list[dict]]) -> Path:
    lines = [
        json.dumps({"source": f"{folder}/{name}", "faces": faces}) for name, faces in faces_by_image.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "x86.jsonl",
        "/host/images",
        {"a.jpg": [face((10, 10, 30, 30)), face((50, 50, 70, 70), "no_mask", 0.7)], "b.jpg": []},
    )


def results(ref: Path, other: Path) -> dict[str, bool]:
    rows = compare_runs.compare(compare_runs.load_run(ref), compare_runs.load_run(other), 1.0, 0.02)
    return {check: passed for check, passed, _ in rows}


def test_runs_within_tolerance_pass_even_when_face_order_swaps(reference: Path, tmp_path: Path) -> None:
    other = write_run(
        tmp_path / "arm.jsonl",
        "/rootfs/images",
        {
            "a.jpg": [face((51, 50, 70, 70), "no_mask", 0.715), face((10, 10, 30, 31), score=0.885)],
            "b.jpg": [],
        },
    )
    assert all(results(reference, other).values())
    assert compare_runs.main([str(reference), str(other)]) == 0


def test_box_two_pixels_off_fails_only_the_box_check(reference: Path, tmp_path: Path) -> None:
    other = write_run(
        tmp_path / "arm.jsonl",
        "/r",
        {"a.jpg": [face((10, 12, 30, 30)), face((50, 50, 70, 70), "no_mask", 0.7)], "b.jpg": []},
    )
    res = results(reference, other)
    assert res.pop("boxes within 1 px") is False
    assert all(res.values())


def test_label_flip_and_score_gap_fail(reference: Path, tmp_path: Path) -> None:
    other = write_run(
        tmp_path / "arm.jsonl",
        "/r",
        {
            "a.jpg": [face((10, 10, 30, 30), "no_mask", 0.55), face((50, 50, 70, 70), "no_mask", 0.7)],
            "b.jpg": [],
        },
    )
    res = results(reference, other)
    assert res["same labels"] is False
    assert res["scores within 0.02"] is False
    assert compare_runs.main([str(reference), str(other)]) == 1


def test_missing_image_and_extra_face_fail(reference: Path, tmp_path: Path) -> None:
    other = write_run(
        tmp_path / "arm.jsonl",
        "/r",
        {"a.jpg": [face((10, 10, 30, 30)), face((50, 50, 70, 70), "no_mask", 0.7), face((90, 9, 99, 20))]},
    )
    res = results(reference, other)
    assert res["same images"] is False
    assert res["same number of faces"] is False


def test_output_without_per_image_records_is_an_error(reference: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text('{"summary": "0 images processed"}\n')
    assert compare_runs.main([str(reference), str(empty)]) == 2
