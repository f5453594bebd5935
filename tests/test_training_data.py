"""Data loading for training: bad files skipped and counted, bad folders refused before any training."""

import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from edgemask.training.classifier.fit import TrainConfig, prepare_data
from edgemask.training.data import (
    DataError,
    Faces,
    LabelledFiles,
    class_files,
    class_weights,
    gather,
    load_faces,
    stratified_split,
    with_low_res_copies,
)


def _solid(path, bgr, size=(20, 20)):
    cv2.imwrite(str(path), np.full((*size, 3), bgr, dtype=np.uint8))


@pytest.fixture
def messy(tmp_path):
    """A class folder layout with one good image per class plus every kind of awkward file."""
    root = tmp_path / "data"
    masked, unmasked = root / "with_mask", root / "without_mask"
    masked.mkdir(parents=True)
    unmasked.mkdir()
    _solid(masked / "good_masked.png", (0, 0, 255))
    _solid(unmasked / "good_unmasked.png", (255, 0, 0))
    (masked / "zero.jpg").write_bytes(b"")
    (masked / "text.jpg").write_text("this is not an image")
    cv2.imwrite(str(masked / "gray.png"), np.full((12, 12), 100, np.uint8))
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 255
    cv2.imwrite(str(unmasked / "rgba.png"), rgba)
    cv2.imwrite(str(unmasked / "deep.png"), np.full((12, 12, 3), 0x8000, np.uint16))
    # 40 wide x 20 high, left half red; EXIF orientation 6 = rotate 90 degrees clockwise to display.
    raw = np.zeros((20, 40, 3), np.uint8)
    raw[:, :20] = (255, 0, 0)
    raw[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(unmasked / "exif.jpg", exif=exif, quality=95)
    return root


def test_bad_files_are_skipped_with_a_count_and_odd_formats_read(messy, caplog):
    files = class_files(messy)
    assert len(files) == 8
    with caplog.at_level(logging.WARNING):
        faces = load_faces(files, 16)
    assert len(faces.skipped) == 2 and {p.rsplit("/", 1)[1] for p in faces.skipped} == {
        "zero.jpg",
        "text.jpg",
    }
    assert "skipped 2 unreadable file(s) of 8" in caplog.text
    assert faces.images.shape == (6, 16, 16, 3) and faces.images.dtype == np.uint8
    assert faces.counts() == {"with_mask": 2, "without_mask": 4}
    by_name = {p.name: i for i, p in enumerate(p for p in files.paths if str(p) not in faces.skipped)}
    assert (faces.images[by_name["gray.png"]] == 100).all()
    assert (faces.images[by_name["rgba.png"]] == (0, 200, 0)).all()
    assert (faces.images[by_name["deep.png"]] == 128).all()
    assert (faces.images[by_name["good_masked.png"]] == (255, 0, 0)).all()  # RGB order: red masked crop
    exif = faces.images[by_name["exif.jpg"]].astype(int)
    # Upright, the red left half is on top: rows are red above and blue below.
    assert exif[:6, :, 0].mean() > 200 and exif[:6, :, 2].mean() < 50
    assert exif[-6:, :, 2].mean() > 200 and exif[-6:, :, 0].mean() < 50


def test_cache_returns_the_same_arrays(messy, tmp_path):
    files = class_files(messy)
    first = load_faces(files, 16, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    second = load_faces(files, 16, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, second.images) and second.skipped == first.skipped


def test_empty_or_missing_class_folder_is_a_clear_error(tmp_path):
    (tmp_path / "with_mask").mkdir()
    _solid(tmp_path / "with_mask" / "a.png", (1, 2, 3))
    with pytest.raises(DataError, match="missing class folder without_mask"):
        class_files(tmp_path)
    (tmp_path / "without_mask").mkdir()
    with pytest.raises(DataError, match="without_mask: no images"):
        class_files(tmp_path)


def test_training_refuses_unusable_data_before_building_a_model(tmp_path):
    for name in ("with_mask", "without_mask"):
        (tmp_path / name).mkdir()
    _solid(tmp_path / "with_mask" / "a.png", (1, 2, 3))
    (tmp_path / "without_mask" / "broken.jpg").write_bytes(b"\xff\xd8junk")
    cfg = TrainConfig(data=[str(tmp_path)], run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match="no readable"):
        prepare_data(cfg)


def test_split_folders_and_plain_folders_combine(tmp_path):
    for split in ("train", "val"):
        for name in ("with_mask", "without_mask"):
            (tmp_path / "a" / split / name).mkdir(parents=True)
            _solid(tmp_path / "a" / split / name / "x.png", (0, 0, 0))
    for name in ("with_mask", "without_mask"):
        (tmp_path / "b" / name).mkdir(parents=True)
        _solid(tmp_path / "b" / name / "y.png", (0, 0, 0))
    folders = [tmp_path / "a", tmp_path / "b"]
    assert len(gather(folders, "train")) == 4  # a/train + b (plain folders are training data)
    assert len(gather(folders, "val")) == 2
    assert len(gather(folders, "test")) == 0


def test_stratified_split_is_seeded_disjoint_and_per_class():
    labels = [0] * 30 + [1] * 10
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == 40
    assert np.bincount(np.array(labels)[held]).tolist() == [6, 2]
    again = stratified_split(labels, 0.2, seed=3)[1]
    assert np.array_equal(held, again)
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=4)[1])


def test_class_weights_balance_the_loss():
    w = class_weights(np.array([0, 0, 0, 1]))
    assert w == pytest.approx({0: 4 / 6, 1: 2.0})
    with pytest.raises(DataError, match="without_mask"):
        class_weights(np.array([0, 0]))


def test_labelled_files_counts():
    files = LabelledFiles(labels=[0, 1, 1])
    assert files.counts() == {"with_mask": 1, "without_mask": 2}


def test_low_res_validation_copies_are_deterministic_and_blurred():
    stripes = np.zeros((2, 32, 32, 3), np.uint8)
    stripes[:, :, (np.arange(32) % 4) < 2] = 255  # 2 px on, 2 px off
    faces = Faces(stripes, np.array([0, 1]))
    out = with_low_res_copies(faces, [8, 16])
    assert out.images.shape == (4, 32, 32, 3) and out.labels.tolist() == [0, 1, 0, 1]
    assert np.array_equal(out.images[:2], stripes)
    assert np.abs(out.images[2].astype(int) - 128).max() <= 1  # 8 px: every 4-px period averaged to gray
    assert out.images[3].std() > 50  # 16 px keeps the stripes
    assert np.array_equal(out.images, with_low_res_copies(faces, [8, 16]).images)
