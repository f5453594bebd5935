"""The SSD tail read from the prototxt (PriorHead chains, DetectionOutput settings) reproduces OpenCV's
``mbox_priorbox`` and ``detection_out`` through the runtime's numpy SSD, at sizes other than 300."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemask.core.imageio import list_images, read_image
from edgemask.core.ops.ssd import detection_output, feature_map_size, prior_boxes
from edgemask.export.caffe_net import ssd_config
from edgemask.export.caffe_proto import CaffeFormatError, parse_prototxt, read_prototxt
from edgemask.export.sources import CAFFE_MEAN


@pytest.fixture(scope="module")
def opencv_net(res10):
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        pytest.skip("this OpenCV has no Caffe importer (OpenCV 5)")
    return cv2.dnn.readNetFromCaffe(str(res10[0]), str(res10[1]))


def test_heads_and_thresholds_from_the_prototxt(res10) -> None:
    config, thresholds = ssd_config(read_prototxt(res10[0]))
    assert [h.min_size for h in config.heads] == [30, 60, 111, 162, 213, 264]
    assert [h.step for h in config.heads] == [8, 16, 32, 64, 100, 300]
    assert [h.aspect_ratios for h in config.heads] == [(2,), (2, 3), (2, 3), (2, 3), (2,), (2,)]
    assert config.variances == (0.1, 0.1, 0.2, 0.2)
    assert (config.nms_threshold, config.top_k, config.keep_top_k) == (0.45, 400, 200)
    assert thresholds == {"confidence": 0.01, "nms": 0.45}
    # conv1 (7/2, pad 3) then Caffe's ceil-mode pool (3/2): the chain every head starts with.
    assert config.heads[0].chain[:2] == ((7, 2, 3, False), (3, 2, 0, True))
    # The dilated conv (3x3, dilation 2) counts as a 5x5 kernel.
    assert (5, 1, 2, False) in config.heads[1].chain
    # res10's last two heads keep the 5x5 map (3x3 convs with pad 1), unlike VGG-SSD's 3 and 1:
    # 38²·4 + 19²·6 + 10²·6 + 5²·6 + 5²·4 + 5²·4 = 8892 priors at 300x300.
    assert [feature_map_size(300, h.chain) for h in config.heads] == [38, 19, 10, 5, 5, 5]
    assert len(prior_boxes(config, (300, 300))) == 8892


@pytest.mark.parametrize("size", [(240, 400), (333, 451)])
def test_priors_match_opencv_priorbox(opencv_net, res10, size) -> None:
    config, _ = ssd_config(read_prototxt(res10[0]))
    h, w = size
    opencv_net.setInput(np.zeros((1, 3, h, w), np.float32))
    reference = opencv_net.forward("mbox_priorbox")[0, 0].reshape(-1, 4)
    ours = prior_boxes(config, size)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_detection_output_matches_opencv_on_a_real_scene(opencv_net, res10, scenes_dir) -> None:
    config, thresholds = ssd_config(read_prototxt(res10[0]))
    image = read_image(list_images(scenes_dir / "images")[3])
    h, w = 360, 480
    opencv_net.setInput(cv2.dnn.blobFromImage(cv2.resize(image, (w, h)), 1.0, (w, h), CAFFE_MEAN))
    loc, conf, det = opencv_net.forward(["mbox_loc", "mbox_conf_flatten", "detection_out"])
    det = det[0, 0]
    det = det[det[:, 2] > 0]  # OpenCV pads keep_top_k rows with zeros
    ours = detection_output(
        loc.reshape(-1, 4), conf.reshape(-1, 2), prior_boxes(config, (h, w)), config, thresholds["confidence"]
    )
    assert len(ours) == len(det) > 10
    np.testing.assert_allclose(ours[:, :4], det[:, 3:7], atol=1e-5)
    np.testing.assert_allclose(ours[:, 4], det[:, 2], atol=1e-6)


def test_not_an_ssd_is_refused() -> None:
    net = parse_prototxt('input: "data" layer { name: "c" type: "Convolution" bottom: "data" top: "c" }')
    with pytest.raises(CaffeFormatError, match="not a Caffe SSD"):
        ssd_config(net)
