"""Metadata survives the round trip through JSON, a TFLite file and an ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemask.core.metadata import (
    METADATA_KEY,
    MetadataError,
    ModelMeta,
    PriorHead,
    SSDConfig,
    append_tflite_metadata,
    read_metadata,
    read_tflite_metadata,
)

META = ModelMeta(
    task="detect",
    precision="int8",
    input_size=(None, None),
    labels=("background", "face"),
    channel_order="BGR",
    mean=(104.0, 177.0, 123.0),
    thresholds={"confidence": 0.5},
    ssd=SSDConfig(heads=(PriorHead(30.0, 60.0, (2.0,), True, False, 8.0, 0.5, ((3, 2, 1, False),)),)),
    sources={"res10.caffemodel": "ab" * 32},
    edgemask_version="0.1.0",
)


def test_json_round_trip() -> None:
    assert ModelMeta.from_json(META.to_json()) == META


def test_tflite_trailer_round_trip_keeps_the_flatbuffer_bytes(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    body = bytes(range(256)) * 10
    path.write_bytes(body)
    append_tflite_metadata(path, META)
    assert path.read_bytes().startswith(body)
    assert read_tflite_metadata(path) == META


def test_missing_metadata_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.tflite"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(MetadataError, match="no edgemask metadata"):
        read_tflite_metadata(path)
    with pytest.raises(MetadataError, match="unknown model format"):
        read_metadata(tmp_path / "model.pb")


def tiny_onnx(path: Path, meta: ModelMeta | None) -> None:
    """A 1x2x2x3 uint8 -> float 'model' that doubles its input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [None, 2, 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 2, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["xf", "two"], ["y"]),
        ],
        "tiny",
        [x],
        [y],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if meta is not None:
        helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, path)


def test_onnx_metadata_and_backend_run(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from edgemask.core.backends import load_backend

    path = tmp_path / "tiny.onnx"
    tiny_onnx(path, META)
    assert read_metadata(path) == META
    backend = load_backend(path)
    assert backend.meta == META
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    (y,) = backend.run(x)
    np.testing.assert_array_equal(y, x.astype(np.float32) * 2)


def test_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from edgemask.core.backends import load_backend

    path = tmp_path / "foreign.onnx"
    tiny_onnx(path, None)
    with pytest.raises(MetadataError, match="no edgemask metadata"):
        load_backend(path)
