"""--sort-into: crops filed by label with a manifest, broken inputs counted, resume, no overwrite/escape."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import FakePipeline
from test_sources import write_bad_and_odd_images

from edgemask.app.cli import main
from edgemask.app.outfiles import inside, safe_name, write_new
from edgemask.app.sorting import FIELDS, MANIFEST, FaceSorter, read_done
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
    assert sorted({r["source"] for r in first}) == readable
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
    assert {r["source"] for r in second[len(first) :]} == {"new.png"}
    for p, data in crops_before.items():
        assert p.read_bytes() == data

    # Everything done: exit 0, nothing processed.
    assert (
        main(["--source", str(tmp_path / "raw"), "--sort-into", str(out)], make_pipeline=lambda a: again) == 0
    )
    assert len(again.seen) == 1


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
    assert files == ["manifest.csv", "without_mask/x_face0.jpg", "without_mask/x_face1.jpg"]
    assert [r["source"] for r in rows(out)] == ["x.jpg", "x.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "raw"]


def test_existing_crops_get_new_names(tmp_path: Path) -> None:
    out = tmp_path / "sorted"
    (out / "with_mask").mkdir(parents=True)
    (out / "with_mask" / "a_face0.jpg").write_bytes(b"keep me")
    sorter = FaceSorter(out, margin=0.0)
    image = np.full((20, 20, 3), 50, np.uint8)
    written = sorter.add("a.jpg", image, [Face((2, 2, 12, 12), "mask", 0.9, 0.8)])
    assert written == [out / "with_mask" / "a_face0-1.jpg"]
    assert (out / "with_mask" / "a_face0.jpg").read_bytes() == b"keep me"
    assert cv2.imread(str(written[0])).shape == (10, 10, 3)


def test_manifest_records_faceless_sources_and_survives_a_torn_row(tmp_path: Path) -> None:
    sorter = FaceSorter(tmp_path)
    sorter.add("empty.jpg", np.zeros((10, 10, 3), np.uint8), [])
    with open(tmp_path / MANIFEST, "a") as f:
        f.write("half.jpg,0,1,2")  # a crash in the middle of a row
    assert read_done(tmp_path / MANIFEST) == {"empty.jpg"}
    resumed = FaceSorter(tmp_path)
    resumed.add("half.jpg", np.zeros((10, 10, 3), np.uint8), [])
    assert read_done(tmp_path / MANIFEST) == {"empty.jpg", "half.jpg"}
    with open(tmp_path / MANIFEST, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(FIELDS)
    assert [line[0] for line in lines[1:]] == ["empty.jpg", "half.jpg", "half.jpg"]


def test_sort_into_refuses_cameras_and_videos(tmp_path: Path, capsys) -> None:
    assert main(["--camera", "0", "--sort-into", str(tmp_path)], make_pipeline=lambda a: FakePipeline()) == 2
    assert "--sort-into works on images" in capsys.readouterr().err
