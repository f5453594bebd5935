"""The detector stage with TensorFlow: the losses on hand-made tensors, the training decoder against the
runtime's, a one-step run that checkpoints and resumes, a damaged checkpoint refused by name."""

import json
import shutil

import numpy as np
import pytest

from edgemask.assets import AssetError, dataset
from edgemask.core.ops.yunet import decode_stride, grid_cells

pytestmark = pytest.mark.tf
keras = pytest.importorskip("keras")

from edgemask.training.detector.config import LossWeights  # noqa: E402
from edgemask.training.detector.loss import bce, decode_boxes, detector_loss, eiou_loss  # noqa: E402


def test_eiou_of_identical_boxes_is_zero_and_of_shifted_ones_by_hand():
    box = np.array([[0.0, 0.0, 2.0, 2.0]], np.float32)
    assert float(eiou_loss(box, box)[0]) == pytest.approx(0.0, abs=1e-6)
    # IoU 1/7; enclosing box 3x3 (c² = 18), centres sqrt(2) apart, same width and height.
    shifted = np.array([[1.0, 1.0, 3.0, 3.0]], np.float32)
    assert float(eiou_loss(box, shifted)[0]) == pytest.approx(1 - 1 / 7 + 2 / 18, rel=1e-5)
    # Widths 2 vs 4 in a 4-wide, 2-high enclosure: IoU 1/2, centres 1 apart, Δw² / c_w² = 4 / 16.
    wide = np.array([[0.0, 0.0, 4.0, 2.0]], np.float32)
    assert float(eiou_loss(box, wide)[0]) == pytest.approx(1 - 0.5 + 1 / 20 + 4 / 16, rel=1e-5)


def test_bce_by_hand():
    assert float(bce(np.float32(0.8), np.float32(1.0))) == pytest.approx(-np.log(0.8), rel=1e-6)
    assert float(bce(np.float32(0.25), np.float32(0.0))) == pytest.approx(-np.log(0.75), rel=1e-6)


def test_training_decodes_boxes_as_the_runtime():
    rng = np.random.default_rng(0)
    cells = grid_cells(64, 96, 16)
    bbox = rng.normal(size=(len(cells), 4)).astype(np.float32)
    runtime, _, _ = decode_stride(
        np.ones(len(cells)), np.ones(len(cells)), bbox, np.zeros((len(cells), 10)), cells, 16
    )
    trained = decode_boxes(bbox, cells, np.full((len(cells), 1), 16.0, np.float32), xp=keras.ops)
    np.testing.assert_allclose(np.asarray(trained), runtime, rtol=1e-5)


def test_detector_loss_by_hand_and_ignored_cells_cost_nothing():
    cells = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    strides = np.full((2, 1), 8.0, np.float32)
    heads = {
        "cls": np.array([[0.5, 0.9]], np.float32),
        "obj": np.array([[0.5, 0.25]], np.float32),
        "bbox": np.zeros((1, 2, 4), np.float32),  # cell 0 decodes to [-4, -4, 4, 4]
        "kps": np.full((1, 2, 10), 0.5, np.float32),
    }
    targets = {
        "positive": np.array([[1.0, 0.0]], np.float32),
        "boxes": np.array([[[-4.0, -4.0, 4.0, 4.0], [0, 0, 0, 0]]], np.float32),
        "obj_weight": np.array([[1.0, 1.0]], np.float32),
        "landmarks": np.zeros((1, 2, 10), np.float32),
        "landmark_weight": np.array([[1.0, 0.0]], np.float32),
    }
    parts = {k: float(v) for k, v in detector_loss(heads, targets, cells, strides, LossWeights()).items()}
    assert parts["obj"] == pytest.approx(-np.log(0.5) - np.log(0.75), rel=1e-5)
    # The box is exact: IoU 1 is cls's target, EIoU is 0.
    assert parts["cls"] == pytest.approx(-np.log(0.5), rel=1e-5)
    assert parts["box"] == pytest.approx(0.0, abs=1e-5)
    assert parts["landmarks"] == pytest.approx(0.1 * 10 * 0.5 * 0.5**2, rel=1e-5)
    assert parts["total"] == pytest.approx(sum(parts[k] for k in ("obj", "cls", "box", "landmarks")))
    targets["obj_weight"] = np.array([[1.0, 0.0]], np.float32)  # the negative cell is ignored
    ignored = detector_loss(heads, targets, cells, strides, LossWeights())
    assert float(ignored["obj"]) == pytest.approx(-np.log(0.5), rel=1e-5)


@pytest.fixture(scope="module")
def tiny_scenes(tmp_path_factory):
    try:
        source = dataset("scenes_train")
    except AssetError as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("scenes")
    for sub in ("images", "annotations"):
        (root / sub).mkdir()
    for xml in sorted((source / "annotations").glob("*.xml"))[:4]:
        shutil.copy(xml, root / "annotations" / xml.name)
        for image in (source / "images").glob(xml.stem + ".*"):
            shutil.copy(image, root / "images" / image.name)
    return root


def run_cli(argv):
    from edgemask.training.cli import train_main

    return train_main(["detector", *argv])


def test_one_step_run_checkpoints_resumes_and_refuses_a_damaged_checkpoint(tiny_scenes, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data", str(tiny_scenes), "--out", str(out), "--input-size", "64", "--val-size", "64"]
    common += ["--batch-size", "2"]
    assert run_cli([*common, "--epochs", "1", "--steps-per-epoch", "1", "--warmup-steps", "1"]) == 0
    state = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert state["epochs_run"] == 1 and (out / "checkpoint.npz").is_file()
    assert (out / "face_detector_yunet_masked.keras").is_file()
    record = json.loads((out / "face_detector_yunet_masked.training.json").read_text())
    assert record["training_data"]["name"] == tiny_scenes.name and record["epochs_run"] == 1
    # Again without --resume: refused, nothing overwritten.
    assert run_cli([*common, "--epochs", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert run_cli([*common, "--epochs", "2", "--steps-per-epoch", "1", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs_run"] == 2
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    (out / "checkpoint.npz").write_bytes((out / "checkpoint.npz").read_bytes()[:500])
    assert run_cli([*common, "--epochs", "3", "--resume"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "checkpoint.npz: damaged checkpoint" in lines[-1]
