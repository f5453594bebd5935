"""Quantization-aware fine-tuning, so the classifier survives full-integer int8 export.

Post-training int8 rounds every activation to 256 levels of the range calibration found. On real small
faces, upscaled to the input size, MobileNetV2's early activations are weak and smooth, and that rounding
flipped 3-4 % of the answers (the reason the v5 file kept a float stem). Here the trained model is
copied with a fake-quantizer on every tensor the TFLite int8 graph stores (each ReLU6 output, each
linear projection after its folded BatchNorm, each residual sum, the rescaled input), with ranges measured
on training crops as calibration would measure them, and fine-tuned through the rounding
(straight-through gradients). The weights then go back into the plain architecture, which exports as
before; no custom layer reaches the saved model.
"""

from __future__ import annotations

import numpy as np

from edgemask.training.classifier.model import BACKBONE_NAME

RESCALED_RANGE = (-1.0, 1.0)
"""The model's Rescaling layer maps 0-255 pixels onto this range."""


def is_quant_point(layer) -> bool:
    """Tensors a TFLite int8 graph stores: activations, projection outputs (BatchNorm folds into the
    convolution before them) and residual sums."""
    kind = type(layer).__name__
    return kind in ("ReLU", "Add") or (kind == "BatchNormalization" and layer.name.endswith("project_BN"))


def activation_ranges(model, images: np.ndarray, batch_size: int = 64) -> dict[str, tuple[float, float]]:
    """Min and max of every quantization point of the backbone over ``images`` (uint8 RGB), as int8
    calibration measures them; every range includes 0, as TFLite's do."""
    import keras

    base = model.get_layer(BACKBONE_NAME)
    points = [layer for layer in base.layers if is_quant_point(layer)]
    probe = keras.Model(base.input, [layer.output for layer in points])
    lo = np.zeros(len(points))
    hi = np.zeros(len(points))
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].astype(np.float32) / 127.5 - 1.0
        for i, out in enumerate(probe(x, training=False)):
            out = np.asarray(out)
            lo[i], hi[i] = min(lo[i], float(out.min())), max(hi[i], float(out.max()))
    return {layer.name: (lo[i], hi[i]) for i, layer in enumerate(points)}


def fake_quant(x, lo: float, hi: float):
    """``x`` rounded to 256 levels of ``[lo, hi]`` in the forward pass, unchanged gradients backward."""
    from keras import ops

    scale = max(hi - lo, 1e-6) / 255.0
    q = ops.round((ops.clip(x, lo, hi) - lo) / scale) * scale + lo
    return x + ops.stop_gradient(q - x)


def quant_aware_copy(model, ranges: dict[str, tuple[float, float]]):
    """A copy of the classifier whose backbone rounds each quantization point to its int8 range, with the
    same weights and trainable flags (BatchNorm stays frozen); the head layers are ``model``'s own."""
    import keras

    class Quantized(keras.layers.Layer):
        """Runs ``inner`` and fake-quantizes its output to a fixed range."""

        def __init__(self, inner, lo: float, hi: float, **kwargs):
            super().__init__(name=inner.name, **kwargs)
            self.inner, self.lo, self.hi = inner, lo, hi

        def build(self, input_shape):
            """``inner`` builds itself on its first call."""

        def call(self, inputs, **kwargs):
            return fake_quant(self.inner(inputs, **kwargs), self.lo, self.hi)

    base = model.get_layer(BACKBONE_NAME)

    def clone(layer):
        twin = layer.__class__.from_config(layer.get_config())
        if layer.name in ranges:
            twin._name = layer.name + "_float"
            return Quantized(twin, *ranges[layer.name])
        return twin

    qbase = keras.models.clone_model(base, clone_function=clone)
    copy_weights(base, qbase)
    inputs = keras.Input(model.input_shape[1:], name="rgb_uint8_pixels")
    x = model.get_layer("to_minus1_1")(inputs)
    x = keras.layers.Lambda(lambda t: fake_quant(t, *RESCALED_RANGE), name="rescaled_int8")(x)
    x = qbase(x, training=False)
    for name in ("pool", "head_dense", "head_dropout", "mask_probs"):
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name="edgemask_classifier_qat")


def copy_weights(source_base, target_base) -> None:
    """Weights and trainable flags from one backbone to its (quantized or plain) twin, by layer name."""
    by_name = {layer.name: layer for layer in target_base.layers}
    target_base.trainable = source_base.trainable
    for layer in source_base.layers:
        if not layer.weights:
            continue
        src = getattr(layer, "inner", layer)
        dst = by_name[layer.name]
        dst = getattr(dst, "inner", dst)
        dst.set_weights(src.get_weights())
        dst.trainable = src.trainable
        by_name[layer.name].trainable = src.trainable


def plain_weights(quantized, plain) -> None:
    """Copy a quant-aware copy's weights back into the plain classifier (same layer names)."""
    for layer in plain.layers:
        if layer.name == BACKBONE_NAME:
            copy_weights(quantized.get_layer(BACKBONE_NAME), layer)
        elif layer.weights:
            layer.set_weights(quantized.get_layer(layer.name).get_weights())
