"""Small synthetic ONNX graphs, rebuilt in Keras and compared with onnxruntime: the padding, pooling,
resize and depthwise conventions that differ between PyTorch/ONNX and TF, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgemask.export.onnx_graph import OnnxConversionError  # noqa: E402
from edgemask.export.onnx_to_keras import build_keras  # noqa: E402

RNG = np.random.default_rng(0)


def graph(nodes, inits, out_shape_rank: int = 4, opset: int = 11, outputs=("y",)) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    ys = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    g = helper.make_graph(nodes, "g", [x], ys, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def conv(name, x, y, out_ch, in_ch, k, inits, **attrs):
    inits[f"{name}_w"] = RNG.normal(size=(out_ch, in_ch, k, k)).astype(np.float32)
    inits[f"{name}_b"] = RNG.normal(size=out_ch).astype(np.float32)
    return helper.make_node(
        "Conv", [x, f"{name}_w", f"{name}_b"], [y], name=name, kernel_shape=[k, k], **attrs
    )


def assert_parity(model: onnx.ModelProto, h: int, w: int, dynamic: bool = True) -> None:
    x = RNG.uniform(0, 255, (1, h, w, 3)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    want = dict(zip(names, sess.run(None, {"x": x.transpose(0, 3, 1, 2)}), strict=True))
    keras_model = build_keras(model, None if dynamic else (h, w))
    got = keras_model(x)
    for name, value in want.items():
        g = np.asarray(got[name])
        if value.ndim == 4 and g.shape != value.shape:
            g = g.transpose(0, 3, 1, 2)
        np.testing.assert_allclose(g, value, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(value).max()))


@pytest.mark.parametrize(("h", "w"), [(32, 32), (33, 47)])
def test_stride2_conv_pads_like_pytorch(h: int, w: int) -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = [conv("c", "x", "y", 8, 3, 3, inits, strides=[2, 2], pads=[1, 1, 1, 1])]
    assert_parity(graph(nodes, inits), h, w)


def test_depthwise_multiplier_and_same_padding() -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = [
        conv("a", "x", "a", 4, 3, 1, inits),
        conv("dw", "a", "y", 8, 1, 3, inits, group=4, pads=[1, 1, 1, 1]),
    ]
    assert_parity(graph(nodes, inits), 20, 24)


def test_maxpool_ceil_mode_after_relu() -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = [
        conv("a", "x", "a", 4, 3, 3, inits, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="r"),
        helper.make_node("MaxPool", ["r"], ["y"], name="p", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    ]
    assert_parity(graph(nodes, inits), 21, 18)


def test_maxpool_padded_signed_input_is_refused() -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = [
        conv("a", "x", "a", 4, 3, 3, inits),
        helper.make_node(
            "MaxPool", ["a"], ["y"], name="p", kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
    ]
    with pytest.raises(OnnxConversionError, match="possibly negative"):
        build_keras(graph(nodes, inits))


@pytest.mark.parametrize(
    ("transform", "nearest"), [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor")]
)
@pytest.mark.parametrize("factors", [(2, 3), (2, 2), (3, 3)])
def test_resize_nearest_integer_scale(transform: str, nearest: str, factors: tuple[int, int]) -> None:
    inits: dict[str, np.ndarray] = {
        "roi": np.zeros(0, np.float32),
        "scales": np.array([1, 1, *factors], np.float32),
    }
    nodes = [
        conv("a", "x", "a", 4, 3, 1, inits),
        helper.make_node(
            "Resize",
            ["a", "roi", "scales"],
            ["y"],
            name="up",
            mode="nearest",
            coordinate_transformation_mode=transform,
            nearest_mode=nearest,
        ),
    ]
    assert_parity(graph(nodes, inits), 8, 10)
    assert_parity(graph(nodes, inits), 8, 10, dynamic=False)


def test_flatten_tail_keeps_cell_order() -> None:
    """Transpose(0,2,3,1) + Reshape([batch, -1, C]) built from Shape/Gather/Unsqueeze/Concat."""
    inits: dict[str, np.ndarray] = {
        "zero": np.array(0, np.int64),
        "minus1": np.array([-1], np.int64),
        "four": np.array([4], np.int64),
    }
    nodes = [
        conv("a", "x", "a", 4, 3, 3, inits, pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["a"], ["t"], name="t", perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["a"], ["s"], name="s"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="g", axis=0),
        helper.make_node("Unsqueeze", ["n"], ["n1"], name="u", axes=[0]),
        helper.make_node("Concat", ["n1", "minus1", "four"], ["shape"], name="cat", axis=0),
        helper.make_node("Reshape", ["t", "shape"], ["r"], name="r"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="sig"),
    ]
    model = graph(nodes, inits)
    assert_parity(model, 16, 24)
    keras_model = build_keras(model)
    assert keras_model.output["y"].shape == (1, None, 4)
    assert not any(type(layer).__name__ == "Permute" for layer in keras_model.layers)


def test_unsupported_op_is_named() -> None:
    nodes = [helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky")]
    with pytest.raises(OnnxConversionError, match=r"leaky \(LeakyRelu\).*not supported"):
        build_keras(graph(nodes, {}))


def test_unsupported_attribute_is_named() -> None:
    inits = {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="linear")]
    with pytest.raises(OnnxConversionError, match="mode='linear'"):
        build_keras(graph(nodes, inits))


def test_yunet_source_rebuilds_with_the_same_outputs(scenes_dir) -> None:
    """The real network: every one of the 12 heads equals ONNX Runtime's on a real, padded scene."""
    import cv2

    from edgemask import assets
    from edgemask.core.detectors import default_passes

    try:
        source = assets.find(assets.YUNET_N.relpath)
    except assets.AssetError as e:
        pytest.skip(str(e))
    image = cv2.imread(str(scenes_dir / "images" / "maksssksksss0.jpg"))
    blob = default_passes("yunet", image)[0].blob.astype(np.float32)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(None, {"input": blob.transpose(0, 3, 1, 2)}), strict=True))
    got = build_keras(source)(blob)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_allclose(np.asarray(got[name]), value, atol=1e-5, err_msg=name)
