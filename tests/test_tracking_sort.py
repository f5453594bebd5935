"""--sort-into on a tracked video: one crop per person (their best view), filed when their track ends or
the run does, with the track id and its frames in the manifest; --no-track on a video is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import write_video
from tracking_fakes import scripted_pipeline, walking_down

from edgemask.app.cli import main
from edgemask.app.sinks import Processed
from edgemask.app.sorting.manifest import MANIFEST, SortFolder
from edgemask.app.sorting.tracks import TrackSortSink, sharpness
from edgemask.app.sources import Frame
from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.tracker import TrackerOptions

STILL = (400, 300, 440, 340)


def rows(out: Path) -> list[dict]:
    with open(out / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def noise(seed: int, blur: bool) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 4) if blur else image


def sort_run(tmp_path: Path, script: list[list], images: list[np.ndarray], p_mask: float = 0.9, **kw):
    """Feeds the frames through a tracked pipeline into a TrackSortSink; returns the sink (closed)."""
    pipeline, _ = scripted_pipeline(script, [p_mask])
    tracking = TrackedPipeline(pipeline, **kw)
    sink = TrackSortSink(SortFolder(tmp_path / "out"), 0.1, tracking)
    for k, image in enumerate(images):
        result = tracking.infer(image)
        sink.write(Processed(Frame(image, k, str(tmp_path / "clip.avi"), "clip.avi"), result, None, None))
        yield sink, k
    sink.close()


def test_the_sharpest_frame_of_each_person_is_filed_once(tmp_path: Path):
    frames = 20
    script = [[walk, (STILL, 0.9)] for [walk] in walking_down(frames)]
    images = [noise(k, blur=k != 12) for k in range(frames)]
    for _ in sort_run(tmp_path, script, images):
        pass
    out = tmp_path / "out"
    assert [(r["track"], r["frame"], r["first_frame"], r["last_frame"]) for r in rows(out)] == [
        ("1", "12", "2", "19"),
        ("2", "12", "2", "19"),
    ]
    assert [r["crop"] for r in rows(out)] == ["with_mask/clip_track1.jpg", "with_mask/clip_track2.jpg"]
    assert [r["label"] for r in rows(out)] == ["mask", "mask"]
    assert rows(out)[0]["x1"] == str(walking_down(frames)[12][0][0][0])
    assert sorted(p.name for p in out.rglob("*.jpg")) == ["clip_track1.jpg", "clip_track2.jpg"]


def test_a_larger_view_beats_an_enlarged_small_one():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    assert sharpness(large) > sharpness(cv2.resize(small, (80, 80)))  # detail compared at one scale
    assert sharpness(cv2.GaussianBlur(large, (0, 0), 3)) < sharpness(large) / 10


def test_a_track_that_ends_is_filed_while_the_run_goes_on(tmp_path: Path):
    frames = 40
    script = [[(STILL, 0.9)]] * 10 + [[]] * (frames - 10)  # the person leaves after frame 9
    images = [noise(k, blur=False) for k in range(frames)]
    filed_at = None
    for sink, k in sort_run(tmp_path, script, images, p_mask=0.2, fps=10):
        if filed_at is None and sink.filed:
            filed_at = k
    assert filed_at == 9 + TrackerOptions().for_fps(10).lost_frames + 1
    assert [(r["track"], r["label"], r["first_frame"], r["last_frame"]) for r in rows(tmp_path / "out")] == [
        ("1", "no_mask", "2", "9")
    ]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    write_video(path, [np.full((240, 320, 3), 90, np.uint8)] * 30)
    return path


def test_sort_into_on_a_video_files_one_crop_per_person(clip: Path, tmp_path: Path, capsys):
    out = tmp_path / "sorted"
    make = lambda args: scripted_pipeline(walking_down(30), [0.9])[0]  # noqa: E731
    assert main(["--source", str(clip), "--sort-into", str(out)], make_pipeline=make) == 0
    [row] = rows(out)
    assert (row["source"], row["track"], row["first_frame"], row["last_frame"]) == (str(clip), "1", "2", "29")
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.jpg")] == ["with_mask/clip_track1.jpg"]
    assert "1 people, one crop each" in capsys.readouterr().err


def test_sort_into_on_an_untracked_video_or_camera_is_refused(clip: Path, tmp_path: Path, capsys):
    make = lambda args: scripted_pipeline(walking_down(30), [0.9])[0]  # noqa: E731
    for source in (["--source", str(clip)], ["--camera", "0"]):
        assert main([*source, "--no-track", "--sort-into", str(tmp_path / "s")], make_pipeline=make) == 2
        assert "needs tracking (drop --no-track)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
