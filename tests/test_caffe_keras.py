"""The Keras rebuild of the Caffe detector against OpenCV 4's own Caffe importer on real scenes, and its
errors when the prototxt and the weights disagree."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemask.core.imageio import list_images, read_image
from edgemask.export.caffe_proto import CaffeFormatError, parse_prototxt, read_caffemodel
from edgemask.export.sources import CAFFE_MEAN

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def keras_ssd(res10):
    from edgemask.export.sources import load_res10

    return load_res10(*res10)


@pytest.mark.parametrize("size", [(300, 300), (333, 451)])
def test_keras_graph_matches_opencv_forward(keras_ssd, res10, scenes_dir, size) -> None:
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        pytest.skip("this OpenCV has no Caffe importer (OpenCV 5)")
    net = cv2.dnn.readNetFromCaffe(str(res10[0]), str(res10[1]))
    h, w = size
    for path in list_images(scenes_dir / "images")[:2]:
        resized = cv2.resize(read_image(path), (w, h), interpolation=cv2.INTER_LINEAR)
        net.setInput(cv2.dnn.blobFromImage(resized, 1.0, (w, h), CAFFE_MEAN))
        loc, conf = net.forward(["mbox_loc", "mbox_conf_flatten"])
        ours_loc, ours_conf = keras_ssd.keras_outputs(resized[None])
        assert ours_loc.shape == (1, loc.size // 4, 4)
        assert ours_conf.shape == (1, conf.size // 2, 2)
        np.testing.assert_allclose(ours_loc.reshape(1, -1), loc, atol=2e-4)
        np.testing.assert_allclose(ours_conf.reshape(1, -1), conf, atol=2e-5)


def test_prototxt_that_does_not_fit_the_weights(res10) -> None:
    from edgemask.export.caffe_to_keras import build_caffe_ssd

    text = res10[0].read_text().replace("num_output: 32", "num_output: 48", 1)
    weights = read_caffemodel(res10[1])
    with pytest.raises(CaffeFormatError, match=r"conv1_h.*\(32, 3, 7, 7\).*\(48, 3, 7, 7\)"):
        build_caffe_ssd(parse_prototxt(text), weights, CAFFE_MEAN)
    del weights["conv4_3_norm"]
    with pytest.raises(CaffeFormatError, match=r"conv4_3_norm.*no weights"):
        build_caffe_ssd(parse_prototxt(res10[0].read_text()), weights, CAFFE_MEAN)


def test_ceil_mode_pooling_and_dilation_on_odd_sizes() -> None:
    """A tiny hand-made net: conv (dilation 2) -> ReLU -> Caffe max pool (ceil) -> heads, vs OpenCV."""
    from edgemask.export.caffe_proto import CaffeLayerWeights
    from edgemask.export.caffe_to_keras import build_caffe_ssd

    rng = np.random.default_rng(0)
    conv_w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    loc_w = rng.normal(size=(4, 4, 1, 1)).astype(np.float32)
    conf_w = rng.normal(size=(2, 4, 1, 1)).astype(np.float32)
    permute = "permute_param { order: 0 order: 2 order: 3 order: 1 }"
    prototxt = f"""
    input: "data" input_shape {{ dim: 1 dim: 3 dim: 32 dim: 24 }}
    layer {{ name: "c" type: "Convolution" bottom: "data" top: "c"
            convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 dilation: 2 stride: 1 }} }}
    layer {{ name: "r" type: "ReLU" bottom: "c" top: "c" }}
    layer {{ name: "p" type: "Pooling" bottom: "c" top: "p"
            pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
    layer {{ name: "l" type: "Convolution" bottom: "p" top: "l"
            convolution_param {{ num_output: 4 kernel_size: 1 }} }}
    layer {{ name: "lp" type: "Permute" bottom: "l" top: "lp" {permute} }}
    layer {{ name: "lf" type: "Flatten" bottom: "lp" top: "lf" }}
    layer {{ name: "f" type: "Convolution" bottom: "p" top: "f"
            convolution_param {{ num_output: 2 kernel_size: 1 }} }}
    layer {{ name: "fp" type: "Permute" bottom: "f" top: "fp" {permute} }}
    layer {{ name: "ff" type: "Flatten" bottom: "fp" top: "ff" }}
    layer {{ name: "pb" type: "PriorBox" bottom: "p" bottom: "data" top: "pb"
            prior_box_param {{ min_size: 8 }} }}
    layer {{ name: "det" type: "DetectionOutput" bottom: "lf" bottom: "ff" bottom: "pb" top: "det"
            detection_output_param {{ num_classes: 2 }} }}
    """
    weights = {
        "c": CaffeLayerWeights("c", "Convolution", [conv_w, np.zeros(4, np.float32)]),
        "l": CaffeLayerWeights("l", "Convolution", [loc_w, np.zeros(4, np.float32)]),
        "f": CaffeLayerWeights("f", "Convolution", [conf_w, np.zeros(2, np.float32)]),
    }
    model = build_caffe_ssd(parse_prototxt(prototxt), weights, (0.0, 0.0, 0.0))
    x = rng.uniform(0, 255, size=(1, 32, 24, 3)).astype(np.float32)
    loc = np.asarray(model(x)["loc"])
    # Reference in numpy: Caffe conv (pad 1, dilation 2: 32x24 -> 30x22), ReLU, then Caffe's ceil-mode
    # pool: 15x11 windows, the last row and column of windows hanging one pixel over the edge.
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    conv = np.zeros((30, 22, 4), np.float32)
    for i in range(3):
        for j in range(3):
            conv += padded[2 * i : 2 * i + 30, 2 * j : 2 * j + 22] @ conv_w[:, :, i, j].T
    conv = np.maximum(conv, 0)
    pool = np.full((15, 11, 4), -np.inf, np.float32)
    for y in range(15):
        for x_ in range(11):
            pool[y, x_] = conv[2 * y : 2 * y + 3, 2 * x_ : 2 * x_ + 3].max(axis=(0, 1))
    expected = (pool @ loc_w[:, :, 0, 0].T).reshape(1, -1, 4)
    np.testing.assert_allclose(loc, expected, rtol=1e-4, atol=1e-2)


def test_dilated_convolution_converts_to_one_tflite_op(tmp_path) -> None:
    """With a dynamic input size, a dilated convolution must reach TFLite as one CONV_2D (XNNPACK runs it
    in place), not as SpaceToBatch -> CONV_2D -> BatchToSpace with paddings computed at run time."""
    import keras
    import tensorflow as tf

    from edgemask.export.caffe_to_keras import conv2d

    rng = np.random.default_rng(1)
    image = keras.Input(shape=(None, None, 3), batch_size=1)
    kernel, bias = rng.normal(size=(3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)
    config = {"strides": (1, 1), "dilation_rate": (2, 2), "groups": 1, "name": "dilated"}
    model = keras.Model(image, conv2d(image, config, kernel, bias))
    x = rng.uniform(size=(1, 19, 17, 3)).astype(np.float32)
    reference = tf.nn.convolution(x, kernel, padding="VALID", dilations=2)
    np.testing.assert_allclose(np.asarray(model(x)), reference, rtol=1e-5, atol=1e-4)
    spec = tf.TensorSpec((1, None, None, 3), tf.float32)
    model.export(str(tmp_path), input_signature=[spec], verbose=False)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tf.lite.TFLiteConverter.from_saved_model(str(tmp_path)).convert())
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops == ["CONV_2D"]
