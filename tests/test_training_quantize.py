"""Quantization-aware fine-tuning: the fake quantizer rounds like int8 and passes gradients through, the
quantized copy measures and keeps its ranges, and weights go back into the plain model unchanged."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


def test_fake_quant_rounds_to_256_levels_and_passes_gradients_through():
    from edgemask.training.classifier.quantize import fake_quant

    x = tf.constant([-3.0, 0.0, 0.013, 1.0, 2.55, 9.0])
    y = fake_quant(x, 0.0, 2.55).numpy()  # levels every 0.01 on [0, 2.55]
    np.testing.assert_allclose(y, [0.0, 0.0, 0.01, 1.0, 2.55, 2.55], atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = tf.reduce_sum(fake_quant(x, 0.0, 2.55) * tf.constant([1.0, 2, 3, 4, 5, 6]))
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), [1, 2, 3, 4, 5, 6])


def test_quant_aware_copy_measures_ranges_and_round_trips_the_weights():
    from edgemask.training.classifier.model import BACKBONE_NAME, build_classifier
    from edgemask.training.classifier.quantize import activation_ranges, plain_weights, quant_aware_copy

    model = build_classifier(32, fine_tune_from=120, imagenet=False)
    rng = np.random.default_rng(0)
    for w in model.weights:  # random but non-degenerate weights, so activations vary
        w.assign(rng.normal(0.0, 0.2, w.shape).astype(np.float32) + (1.0 if "variance" in w.path else 0.0))
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    ranges = activation_ranges(model, images, batch_size=3)
    base = model.get_layer(BACKBONE_NAME)
    assert len(ranges) == 35 + 17 + 10  # ReLUs, projections, residual sums of MobileNetV2
    assert all(lo <= 0.0 <= hi for lo, hi in ranges.values())
    assert ranges["Conv1_relu"][1] <= 6.0
    quantized = quant_aware_copy(model, ranges)
    x = images.astype(np.float32)
    float_probs, quant_probs = np.asarray(model(x)), np.asarray(quantized(x))
    assert not np.array_equal(float_probs, quant_probs)  # the rounding is really there
    np.testing.assert_allclose(quant_probs, float_probs, atol=0.2)  # and only rounding
    assert [w.shape for w in quantized.trainable_weights] == [w.shape for w in model.trainable_weights]
    # weights survive the trip back, BatchNorm stays frozen
    head = model.get_layer("head_dense").get_weights()[0]
    last = base.get_layer("block_16_project").get_weights()[0]
    for w in quantized.trainable_weights:
        w.assign(w + 0.01)
    plain = build_classifier(32, fine_tune_from=120, imagenet=False)
    plain_weights(quantized, plain)
    np.testing.assert_allclose(plain.get_layer("head_dense").get_weights()[0], head + 0.01, atol=1e-6)
    plain_base = plain.get_layer(BACKBONE_NAME)
    np.testing.assert_allclose(
        plain_base.get_layer("block_16_project").get_weights()[0], last + 0.01, atol=1e-6
    )
    assert not plain_base.get_layer("bn_Conv1").trainable
    assert base.get_layer("block_16_project").trainable
