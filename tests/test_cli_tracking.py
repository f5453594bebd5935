"""edgemask-run with tracking: track fields and a people summary for videos, none for photos, and
one-line errors for a bad --count-line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import write_video
from tracking_fakes import scripted_pipeline, walking_down

from edgemask.app.cli import main

FRAMES = 30


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    write_video(path, [np.full((240, 320, 3), 90, np.uint8)] * FRAMES)
    return path


def run(argv: list[str], p_mask: float = 0.9) -> int:
    return main(argv, make_pipeline=lambda args: scripted_pipeline(walking_down(FRAMES), [p_mask])[0])


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_video_is_tracked_by_default_and_ends_with_a_people_summary(clip: Path, capsys):
    assert run(["--source", str(clip), "--json", "--count-line", "0,100,320,100"]) == 0
    captured = capsys.readouterr()
    *frames, last = records(captured.out)
    assert len(frames) == FRAMES
    tracked = [f for r in frames for f in r["faces"] if "track" in f]
    assert len(tracked) == FRAMES - 2  # confirmed on the third frame
    assert {(f["track"], f["track_label"]) for f in tracked} == {(1, "mask")}
    assert last == {
        "summary": {
            "people": {"total": 1, "mask": 1, "no_mask": 0},
            "crossings": {
                "in": {"total": 1, "mask": 1, "no_mask": 0},
                "out": {"total": 0, "mask": 0, "no_mask": 0},
            },
        }
    }
    assert "people: 1 (mask 1, no_mask 0)" in captured.err
    assert "count line, in: 1 (mask 1, no_mask 0)" in captured.err


def test_no_track_judges_every_frame_alone(clip: Path, capsys):
    assert run(["--source", str(clip), "--json", "--no-track"], p_mask=0.2) == 0
    frames = records(capsys.readouterr().out)
    assert len(frames) == FRAMES
    assert all("track" not in f and f["label"] == "no_mask" for r in frames for f in r["faces"])


def test_track_on_photos_warns_and_judges_each_alone(tmp_path: Path, capsys):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((240, 320, 3), 90, np.uint8))
    assert run(["--source", str(tmp_path), "--json", "--track"]) == 0
    captured = capsys.readouterr()
    assert "photos are not a sequence" in captured.err
    assert all("track" not in f for r in records(captured.out) for f in r["faces"])


def test_a_malformed_count_line_is_a_usage_error(clip: Path, capsys):
    with pytest.raises(SystemExit) as e:
        run(["--source", str(clip), "--count-line", "0,100,320"])
    assert e.value.code == 2
    assert "expected four numbers X1,Y1,X2,Y2" in capsys.readouterr().err


def test_a_count_line_outside_the_frame_is_one_line_and_exit_2_before_any_output(clip: Path, capsys):
    assert run(["--source", str(clip), "--json", "--count-line", "0,100,900,100"]) == 2
    captured = capsys.readouterr()
    assert [ln for ln in captured.err.splitlines() if "error" in ln] == [
        "edgemask-run: error: count line end (900, 100) is outside the 320x240 frame"
    ]
    assert captured.out == ""
