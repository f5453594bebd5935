"""--sort-into: crops filed by label with a manifest, broken inputs counted, resume, no overwrite/escape."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import FakePipeline
from test_sources import write_bad_and_odd_images

from edgemask.app.cli import main
from edgemask.app.outfiles import inside, safe_name, write_new
from edgemask.app.sorting.crops import crop_rows
from edgemask.app.sorting.manifest import FIELDS, LOCK_FILE, MANIFEST, SortFolder, SortLock, read_manifest
from edgemask.assets import file_digest
from edgemask.core.pipeline import Face


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../x.jpg", "x.jpg"),
        ("../../etc/passwd", "etc__passwd"),
        ("/abs/path/img.png", "abs__path__img.png"),
        ("..\\..\\win.jpg", "win.jpg"),
        ("sub/dir/a b#c.jpg", "sub__dir__a_b_c.jpg"),
        (".hidden", "hidden"),
        ("..", "unnamed"),
        ("", "unnamed"),
        ("x\n../y", "x_..__y"),
    ],
)
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    assert inside(tmp_path, "a.jpg") == tmp_path / "a.jpg"
    with pytest.raises(ValueError, match="escape"):
        inside(tmp_path, "../a.jpg")


def test_write_new_never_overwrites(tmp_path: Path) -> None:
    first = write_new(tmp_path / "a.jpg", b"1")
    second = write_new(tmp_path / "a.jpg", b"2")
    third = write_new(tmp_path / "a.jpg", b"3")
    assert [p.name for p in (first, second, third)] == ["a.jpg", "a-1.jpg", "a-2.jpg"]
    assert [p.read_bytes() for p in (first, second, third)] == [b"1", b"2", b"3"]


def rows(out: Path) -> list[dict]:
    with open(out / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def test_sort_into_broken_folder_then_resume(tmp_path: Path, scenes_dir: Path, capsys) -> None:
    scene = sorted((scenes_dir / "images").iterdir())[0]
    expected = write_bad_and_odd_images(tmp_path / "raw", scene)
    readable = sorted(k for k, v in expected.items() if v == "")
    out = tmp_path / "sorted"
    pipeline = FakePipeline()
    assert (
        main(["--source", str(tmp_path / "raw"), "--sort-into", str(out)], make_pipeline=lambda a: pipeline)
        == 0
    )
    err = capsys.readouterr().err
    assert "4 images processed, 8 faces" in err
    assert "skipped 3: not a decodable image" in err and "skipped 1: zero-byte file" in err

    first = rows(out)
    assert sorted({r["source"] for r in first}) == [str(tmp_path / "raw" / k) for k in readable]
    assert len(first) == 2 * len(readable)
    for r in first:
        crop = out / r["crop"]
        assert (
            crop.is_file()
            and crop.parent.name == {"mask": "with_mask", "no_mask": "without_mask"}[r["label"]]
        )
        box = [int(r[k]) for k in ("x1", "y1", "x2", "y2")]
        image = cv2.imread(str(crop))
        # The crop is the face box grown by the 10 % margin and clamped to the image.
        w, h = box[2] - box[0], box[3] - box[1]
        assert abs(image.shape[1] - w * 1.2) <= 2 or box[0] == 0
        assert abs(image.shape[0] - h * 1.2) <= 2 or box[1] == 0
    crops_before = {p: p.read_bytes() for p in out.rglob("*.jpg")}

    # Resume: a new image appears; only it is processed, nothing already there is touched.
    cv2.imwrite(str(tmp_path / "raw" / "new.png"), np.full((40, 60, 3), 200, np.uint8))
    again = FakePipeline()
    assert (
        main(["--source", str(tmp_path / "raw"), "--sort-into", str(out)], make_pipeline=lambda a: again) == 0
    )
    err = capsys.readouterr().err
    assert len(again.seen) == 1
    assert f"skipped {len(readable)}: already done" in err
    second = rows(out)
    assert second[: len(first)] == first
    assert {r["source"] for r in second[len(first) :]} == {str(tmp_path / "raw" / "new.png")}
    for p, data in crops_before.items():
        assert p.read_bytes() == data

    # Everything done: exit 0, nothing processed, and the summary says so.
    assert (
        main(["--source", str(tmp_path / "raw"), "--sort-into", str(out)], make_pipeline=lambda a: again) == 0
    )
    assert len(again.seen) == 1
    assert f"nothing new: {len(readable) + 1} images already done (exit 0)" in capsys.readouterr().err


def test_sort_into_glob_with_dotdot_cannot_escape(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "other").mkdir()
    cv2.imwrite(str(tmp_path / "other" / "x.jpg"), np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "raw" / "sorted"
    pattern = str(tmp_path / "raw" / ".." / "other" / "*.jpg")
    assert (
        main(
            ["--source", pattern, "--sort-into", str(out), "--quiet"], make_pipeline=lambda a: FakePipeline()
        )
        == 0
    )
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [LOCK_FILE, "manifest.csv", "without_mask/x_face0.jpg", "without_mask/x_face1.jpg"]
    assert [r["source"] for r in rows(out)] == [
        os.path.abspath(tmp_path / "raw" / ".." / "other" / "x.jpg")
    ] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "raw"]


def test_existing_crops_get_new_names(tmp_path: Path) -> None:
    out = tmp_path / "sorted"
    (out / "with_mask").mkdir(parents=True)
    (out / "with_mask" / "a_face0.jpg").write_bytes(b"keep me")
    folder = SortFolder(out)
    image = np.full((20, 20, 3), 50, np.uint8)
    written = folder.record(
        crop_rows("/in/a.jpg", "a.jpg", "d1", image, [Face((2, 2, 12, 12), "mask", 0.9, 0.8)], 0.0)
    )
    folder.close()
    assert written == [out / "with_mask" / "a_face0-1.jpg"]
    assert (out / "with_mask" / "a_face0.jpg").read_bytes() == b"keep me"
    assert cv2.imread(str(written[0])).shape == (10, 10, 3)


def test_manifest_records_faceless_sources_and_survives_a_torn_row(tmp_path: Path) -> None:
    folder = SortFolder(tmp_path)
    folder.record(crop_rows("empty.jpg", "empty.jpg", "", np.zeros((10, 10, 3), np.uint8), [], 0.1))
    folder.close()
    with open(tmp_path / MANIFEST, "a") as f:
        f.write("half.jpg,,0,1,2")  # a crash in the middle of a row
    assert read_manifest(tmp_path / MANIFEST).legacy_paths == {"empty.jpg"}
    resumed = SortFolder(tmp_path)
    resumed.record(crop_rows("half.jpg", "half.jpg", "", np.zeros((10, 10, 3), np.uint8), [], 0.1))
    resumed.close()
    assert read_manifest(tmp_path / MANIFEST).legacy_paths == {"empty.jpg", "half.jpg"}
    with open(tmp_path / MANIFEST, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(FIELDS)
    assert [line[0] for line in lines[1:]] == ["empty.jpg", "half.jpg", "half.jpg"]


def test_sort_into_refuses_cameras_and_videos(tmp_path: Path, capsys) -> None:
    assert main(["--camera", "0", "--sort-into", str(tmp_path)], make_pipeline=lambda a: FakePipeline()) == 2
    assert "--sort-into works on images" in capsys.readouterr().err


def sort(source: Path, out: Path, pipeline: FakePipeline | None = None) -> int:
    return main(
        ["--source", str(source), "--sort-into", str(out), "--quiet"],
        make_pipeline=lambda a: pipeline or FakePipeline(),
    )


def write_days(root: Path) -> None:
    """Two folders of camera dumps whose files have the same names but different pictures."""
    for day, value in (("day1", 40), ("day2", 200)):
        (root / day).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(root / day / f"img_{k}.png"), np.full((40, 60, 3), value + k, np.uint8))


def test_same_names_with_new_pictures_are_all_sorted(tmp_path: Path) -> None:
    write_days(tmp_path)
    out = tmp_path / "sorted"
    assert sort(tmp_path / "day1", out) == 0
    day2 = FakePipeline()
    assert sort(tmp_path / "day2", out, day2) == 0
    assert len(day2.seen) == 2  # nothing skipped as "already done"
    manifest = rows(out)
    # The same names from two days stay apart: the manifest records each file's absolute path.
    days = [str(tmp_path / day / f"img_{k}.png") for day in ("day1", "day2") for k in range(2)]
    assert [r["source"] for r in manifest] == [source for source in days for _ in range(2)]
    digests = [file_digest(tmp_path / day / f"img_{k}.png") for day in ("day1", "day2") for k in range(2)]
    assert [r["sha256"] for r in manifest[::2]] == digests
    crops = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert len(crops) == len(set(r["crop"] for r in manifest)) == 8
    assert "without_mask/img_0_face1-1.jpg" in crops  # day2's crop beside day1's, not over it


def test_reruns_renames_and_copies_of_sorted_pictures_are_skipped(tmp_path: Path, capsys) -> None:
    write_days(tmp_path)
    out = tmp_path / "sorted"
    assert sort(tmp_path / "day1", out) == 0
    before = (out / MANIFEST).read_bytes()
    again = FakePipeline()
    assert (
        main(["--source", str(tmp_path / "day1"), "--sort-into", str(out)], make_pipeline=lambda a: again)
        == 0
    )
    assert again.seen == [] and "skipped 2: already done" in capsys.readouterr().err
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (tmp_path / "day1" / "img_0.png").rename(renamed / "holiday.png")
    (renamed / "copy.png").write_bytes((tmp_path / "day1" / "img_1.png").read_bytes())
    (renamed / "copy2.png").write_bytes((tmp_path / "day1" / "img_1.png").read_bytes())
    cv2.imwrite(str(renamed / "new.png"), np.full((40, 60, 3), 123, np.uint8))
    later = FakePipeline()
    assert sort(renamed, out, later) == 0
    assert len(later.seen) == 1 and later.seen[0].mean() == 123
    assert (out / MANIFEST).read_bytes().startswith(before)
    assert [r["source"] for r in rows(out)[len(rows(out)) - 2 :]] == [str(renamed / "new.png")] * 2


LEGACY_FIELDS = ("source", "face", "x1", "y1", "x2", "y2", "label", "score", "face_score", "crop")


def test_manifest_from_before_digests_is_read_by_path_and_upgraded(tmp_path: Path) -> None:
    """Rows of edgemask < 0.3 carry no digest: they still mark their path done (as they did), and the
    file gets the sha256 column once, with every old row kept."""
    write_days(tmp_path)
    out = tmp_path / "sorted"
    out.mkdir()
    legacy = [
        ["img_0.png", "0", "1", "2", "30", "40", "mask", "0.9000", "0.8000", "with_mask/img_0_face0.jpg"],
        ["gone.png", "", "", "", "", "", "", "", "", ""],
    ]
    with open(out / MANIFEST, "w", newline="") as f:
        csv.writer(f).writerows([LEGACY_FIELDS, *legacy])
    pipeline = FakePipeline()
    assert sort(tmp_path / "day2", out, pipeline) == 0
    assert len(pipeline.seen) == 1  # img_0.png is done by path; img_1.png is new
    with open(out / MANIFEST, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(FIELDS)
    assert [dict(zip(FIELDS, line, strict=True)) for line in lines[1:3]] == [
        {**dict(zip(LEGACY_FIELDS, row, strict=True)), "sha256": ""} for row in legacy
    ]
    assert [line[0] for line in lines[3:]] == [str(tmp_path / "day2" / "img_1.png")] * 2
    assert lines[3][1] == file_digest(tmp_path / "day2" / "img_1.png")
    assert not (out / (MANIFEST + ".partial")).exists()


def test_a_second_run_into_a_busy_folder_stops_at_once(tmp_path: Path, capsys) -> None:
    write_days(tmp_path)
    out = tmp_path / "sorted"
    out.mkdir()
    holder = SortLock(out)  # as another edgemask-run would hold it
    pipeline = FakePipeline()
    try:
        assert sort(tmp_path / "day1", out, pipeline) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"edgemask-run: error: {out} is in use by another edgemask-run (pid {os.getpid()}); wait "
        "for it to finish or sort into another folder"
    ]
    assert pipeline.seen == [] and sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    assert sort(tmp_path / "day1", out) == 0  # released: the next run goes ahead
    assert len(rows(out)) == 4


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path: Path, capsys) -> None:
    write_days(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    assert sort(tmp_path / "day1", blocker / "sorted") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"edgemask-run: error: {blocker / 'sorted'}: cannot sort into this folder")
    out = tmp_path / "sorted"
    out.mkdir()
    (out / MANIFEST).write_bytes(b"source,crop\n\xff\xfe broken\n")
    assert sort(tmp_path / "day1", out) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"edgemask-run: error: {out / MANIFEST}: cannot read or update it")
    assert (out / MANIFEST).read_bytes() == b"source,crop\n\xff\xfe broken\n"
