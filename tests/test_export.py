"""End-to-end ``edgemask-export`` at tiny sizes: every format runs, files describe themselves, the gate
refuses a broken model without touching the old file, and bad input writes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edgemask.assets import file_digest
from edgemask.core.classifier import MaskClassifier
from edgemask.core.detectors import Res10Detector, YuNetDetector, yunet
from edgemask.core.detectors.res10 import DEFAULT_CONFIDENCE, OPERATING_POINT
from edgemask.core.formats import VARIANTS
from edgemask.core.imageio import list_images, read_image
from edgemask.core.metadata import GridConfig, read_metadata
from edgemask.core.ops.boxes import iou_matrix
from edgemask.export.cli import main
from edgemask.labels import LABELS

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

SIZE = 16
QUICK = ["--gate-images", "4", "--calib-images", "8"]


def color_classifier(path: Path, weight: float = 4.0) -> Path:
    """A stand-in classifier with a known answer: with_mask when the crop is redder than it is blue."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(x)
    dense.set_weights([np.array([[weight, -weight], [0, 0], [-weight, weight]], np.float32), np.zeros(2)])
    keras.Model(inputs, outputs).save(path)
    return path


def swatch(bgr: tuple[int, int, int]) -> np.ndarray:
    return np.full((40, 30, 3), bgr, np.uint8)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_classifier_exports_in_every_format(tmp_path: Path, scenes_dir: Path) -> None:
    keras_file = color_classifier(tmp_path / "standin.keras")
    out = tmp_path / "models"
    args = ["--models", "classifier", "--int8", "--classifier", str(keras_file), "--out", str(out)]
    code = main([*args, *QUICK])
    report = sorted(p.name for p in out.iterdir())
    # Every file of the formats table, int8 too: the stand-in's answer survives quantization.
    assert report == sorted(f"mask_classifier_{v.precision}.{v.format}" for v in VARIANTS)
    assert code == 0
    assert not leftovers(out)
    for path in sorted(out.iterdir()):
        meta = read_metadata(path)
        assert (meta.task, meta.labels, meta.input_size) == ("classify", LABELS, (SIZE, SIZE))
        assert meta.channel_order == "RGB"
        assert meta.precision == path.stem.split("_")[-1]
        assert meta.mean == pytest.approx((127.5,) * 3) and meta.scale == pytest.approx(1 / 127.5)
        assert meta.sources == {"standin.keras": file_digest(keras_file)}
        assert meta.outputs == ("probs",)
        assert meta.checksum is not None and len(meta.checksum.sha256) == 64  # verified by the load below
        clf = MaskClassifier(path)
        probs = clf.infer([swatch((0, 0, 255)), swatch((255, 0, 0)), swatch((90, 60, 200))])
        # red: with_mask; blue: without_mask; p(with_mask) = sigmoid(2 * 4 * (r - b) / 127.5)
        assert probs.argmax(axis=1).tolist() == [0, 1, 0]
        expected = 1 / (1 + np.exp(-8 * (200 - 90) / 127.5))
        assert probs[2, 0] == pytest.approx(expected, abs=0.02)
        if meta.precision == "int8" and path.suffix == ".tflite":
            assert clf.backend._input["dtype"] == np.uint8


def test_detector_exports_run_and_match_opencv(tmp_path: Path, res10, scenes_dir: Path) -> None:
    from edgemask.export.caffe_net import ssd_config
    from edgemask.export.caffe_proto import read_prototxt

    out = tmp_path / "models"
    args = ["--models", "res10", "--precisions", "fp32", "int8"]
    code = main([*args, "--out", str(out), *QUICK])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"face_detector_res10_{p}.{f}" for f in ("onnx", "tflite") for p in ("fp32", "int8")
    )
    assert code == 0
    ssd, _ = ssd_config(read_prototxt(res10[0]))
    image = read_image(list_images(scenes_dir / "images")[0])
    boxes = {}
    for path in out.iterdir():
        meta = read_metadata(path)
        assert (meta.task, meta.input_size, meta.channel_order) == ("detect", (None, None), "BGR")
        assert meta.ssd == ssd
        assert meta.sources == {p.name: file_digest(p) for p in res10}
        assert sorted(meta.outputs) == ["conf", "loc"]
        assert meta.thresholds == {"confidence": DEFAULT_CONFIDENCE, "nms": 0.45}
        assert (meta.family, meta.operating_point) == ("res10", OPERATING_POINT)
        if meta.precision == "int8":
            assert meta.extra["calibration"]["images"] == 8
        detector = Res10Detector(path, conf_threshold=0.2, input_size=160, small_face_size=0)
        boxes[path.name] = detector.infer(image)
    fp32 = boxes["face_detector_res10_fp32.tflite"]
    np.testing.assert_allclose(fp32, boxes["face_detector_res10_fp32.onnx"], atol=1e-2)


def test_yunet_exports_describe_themselves_and_agree(tmp_path: Path, scenes_dir: Path) -> None:
    out = tmp_path / "models"
    flags = ["--models", "yunet", "--precisions", "fp32", "int8"]
    assert main([*flags, "--out", str(out), *QUICK]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"face_detector_yunet_{p}.{f}" for f in ("onnx", "tflite") for p in ("fp32", "int8")
    )
    image = read_image(scenes_dir / "images" / "maksssksksss0.jpg")
    found = {}
    for path in out.iterdir():
        meta = read_metadata(path)
        assert (meta.family, meta.grid, meta.channel_order) == ("yunet", GridConfig(), "BGR")
        assert meta.operating_point == {"long_side": yunet.DEFAULT_LONG_SIDE}
        assert meta.thresholds == {"confidence": yunet.DEFAULT_CONFIDENCE, "nms": yunet.DEFAULT_NMS}
        assert sorted(meta.outputs) == sorted(
            f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)
        )
        found[path.name] = YuNetDetector(path, conf_threshold=0.3).detect(image)
    # Both fp32 files are the same network: the same faces, boxes and landmarks to a hundredth of a pixel.
    a, b = found["face_detector_yunet_fp32.tflite"], found["face_detector_yunet_fp32.onnx"]
    assert len(a) == len(b) >= 4
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
    for name in ("face_detector_yunet_int8.tflite", "face_detector_yunet_int8.onnx"):
        int8 = found[name]
        assert (iou_matrix(a.boxes, int8.boxes).max(axis=1) >= 0.5).mean() >= 0.9, name
    # A dynamic input size leaves no run-time shape arithmetic in either TFLite file (it used to add
    # 4 SHAPE, 11 STRIDED_SLICE and 4 EXPAND_DIMS + TILE for the two upsamplings).
    for precision in ("fp32", "int8"):
        ops = tflite_ops(out / f"face_detector_yunet_{precision}.tflite")
        assert ops.isdisjoint({"SHAPE", "STRIDED_SLICE", "SLICE", "TILE", "EXPAND_DIMS"}), ops
        assert "DEPTH_TO_SPACE" in ops
    # The ONNX files upsample with Resize, as the source does (ONNX Runtime runs it in its own layout).
    import onnx

    fp32_onnx = [n.op_type for n in onnx.load(out / "face_detector_yunet_fp32.onnx").graph.node]
    assert fp32_onnx.count("Resize") == 2 and "DepthToSpace" not in fp32_onnx


def tflite_ops(path: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


def test_truncated_yunet_source_is_named_and_nothing_is_written(tmp_path: Path, caplog) -> None:
    from edgemask import assets

    cut = tmp_path / "cut.onnx"
    cut.write_bytes(assets.find(assets.YUNET_N.relpath).read_bytes()[:50_000])
    out = tmp_path / "models"
    assert main(["--models", "yunet", "--formats", "onnx", "--yunet", str(cut), "--out", str(out)]) == 2
    assert "cut.onnx: cannot rebuild as a YuNet detector" in caplog.text
    assert not out.exists() or not any(out.iterdir())


def test_gate_refuses_a_broken_model_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch, caplog, scenes_dir
) -> None:

    from edgemask.export import tflite as tflite_export

    keras_file = color_classifier(tmp_path / "standin.keras")
    out = tmp_path / "models"
    out.mkdir()
    old = out / "mask_classifier_fp32.tflite"
    old.write_bytes(b"the previous, verified model")
    convert = tflite_export.convert

    def convert_swapped(source, precision, calibration=None, float_stem=0):
        """The bug being caught: an exporter that swaps the two classes."""
        import keras

        swapped = keras.Model(source.model.input, source.model.output[:, ::-1])
        return convert(dataclasses.replace(source, model=swapped), precision, calibration, float_stem)

    monkeypatch.setattr(tflite_export, "convert", convert_swapped)
    args = ["--models", "classifier", "--formats", "tflite", "--precisions", "fp32"]
    code = main([*args, "--classifier", str(keras_file), "--out", str(out), *QUICK])
    assert code == 1
    assert old.read_bytes() == b"the previous, verified model"
    assert sorted(p.name for p in out.iterdir()) == ["mask_classifier_fp32.tflite"]
    assert "NOT installed: mask_classifier_fp32.tflite" in caplog.text
    assert "argmax agrees with Keras on only 0.00%" in caplog.text
    assert f"the previous mask_classifier_fp32.tflite in {out} left untouched" in caplog.text


def test_int8_that_fails_falls_back_to_a_float_stem(tmp_path: Path, monkeypatch, caplog, scenes_dir) -> None:
    from edgemask.export import run as export_run

    real_check = export_run.check_classifier

    def full_integer_fails(path, label, reference):
        check = real_check(path, label, reference)
        if read_metadata(path).extra["float_stem_ops"] == 0:
            check.failures.append("pretend the full-integer file disagrees with Keras")
        return check

    monkeypatch.setattr(export_run, "check_classifier", full_integer_fails)
    keras_file = color_classifier(tmp_path / "standin.keras")
    out = tmp_path / "models"
    args = ["--models", "classifier", "--precisions", "int8", "--classifier", str(keras_file)]
    assert main([*args, "--out", str(out), *QUICK]) == 0
    assert caplog.text.count("retrying with a float stem") == 2
    for name in ("mask_classifier_int8.tflite", "mask_classifier_int8.onnx"):
        assert read_metadata(out / name).extra["float_stem_ops"] == 12
        probs = MaskClassifier(out / name).infer([swatch((0, 0, 255)), swatch((255, 0, 0))])
        assert probs.argmax(axis=1).tolist() == [0, 1]
    assert MaskClassifier(out / "mask_classifier_int8.tflite").backend._input["dtype"] == np.uint8


def test_keep_failed_installs_a_refused_file_that_says_so(
    tmp_path: Path, monkeypatch, caplog, capfd, scenes_dir
) -> None:
    """A small custom classifier's int8 file can fall short of the gate: by default nothing is
    installed (and there were no previous files to speak of); --keep-failed installs it with the failures
    in its metadata, and loading it warns once."""
    from edgemask.core.backends import FailedGateWarning
    from edgemask.export import run as export_run

    real_check = export_run.check_classifier
    failure = "argmax agrees with Keras on only 93.30% of crops (< 99%)"

    def always_fails(path, label, reference):
        check = real_check(path, label, reference)
        check.failures.append(failure)
        return check

    monkeypatch.setattr(export_run, "check_classifier", always_fails)
    keras_file = color_classifier(tmp_path / "standin.keras")
    out = tmp_path / "models"
    args = ["--models", "classifier", "--formats", "tflite", "--precisions", "int8"]
    args += ["--classifier", str(keras_file), "--out", str(out), *QUICK]
    assert main(args) == 1
    assert "1 file(s) failed their gate and were not installed" in caplog.text
    assert "previous" not in caplog.text and not any(out.iterdir())
    caplog.clear()
    assert main([*args, "--keep-failed"]) == 0
    installed = out / "mask_classifier_int8.tflite"
    assert sorted(p.name for p in out.iterdir()) == [installed.name]
    assert read_metadata(installed).failed_gate == (failure,)
    assert read_metadata(installed).extra["float_stem_ops"] == 12  # the last attempt is the one kept
    assert "installed although it failed its gate (--keep-failed): mask_classifier_int8.tflite" in caplog.text
    with pytest.warns(FailedGateWarning, match=r"--keep-failed although it failed .*93\.30%") as warned:
        first = MaskClassifier(installed)
        MaskClassifier(installed)
    assert len(warned) == 1
    assert first.infer([swatch((0, 0, 255)), swatch((255, 0, 0))]).argmax(axis=1).tolist() == [0, 1]
    err = capfd.readouterr().err
    assert "fully_quantize" not in err and "I0000" not in err


def bad_inputs(tmp_path: Path, res10) -> dict[str, tuple[list[str], str]]:
    proto, model = res10
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(model.read_bytes()[:100_000])
    wrong = tmp_path / "wrong.prototxt"
    wrong.write_text(proto.read_text().replace("num_output: 32", "num_output: 16", 1))
    empty = tmp_path / "empty_calibration"
    empty.mkdir()
    return {
        "missing caffemodel": (["--caffemodel", str(tmp_path / "gone.caffemodel")], "gone.caffemodel"),
        "truncated caffemodel": (["--caffemodel", str(cut)], "cut.caffemodel"),
        "prototxt not matching": (["--prototxt", str(wrong)], "conv1_h"),
        "empty calibration": (["--int8", "--calib-detector", str(empty)], "empty_calibration"),
    }


@pytest.mark.parametrize(
    "case", ["missing caffemodel", "truncated caffemodel", "prototxt not matching", "empty calibration"]
)
def test_bad_detector_input_is_named_and_nothing_is_written(tmp_path: Path, res10, caplog, case: str) -> None:
    flags, named = bad_inputs(tmp_path, res10)[case]
    out = tmp_path / "models"
    assert main(["--models", "res10", "--formats", "onnx", "--out", str(out), *flags]) == 2
    assert named in caplog.text
    assert not out.exists() or not any(out.iterdir())


def test_keras_file_that_is_not_a_two_class_classifier(tmp_path: Path, caplog) -> None:
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    three = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path / "three.keras"
    keras.Model(inputs, three).save(path)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip archive")
    out = tmp_path / "models"
    for bad, message in ((path, "expected 2 outputs"), (garbage, "not a loadable Keras model")):
        assert main(["--models", "classifier", "--classifier", str(bad), "--out", str(out)]) == 2
        assert f"{bad.name}: {message}" in caplog.text
    assert not out.exists() or not any(out.iterdir())
