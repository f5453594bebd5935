"""The Keras layers the rebuilt Caffe and ONNX networks need that Keras lacks (or emits as slow TFLite
graphs), in the exact form the source computes them; they are registered for saving, so a rebuilt model
can be written and read back."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="edgemask")
class ChannelAffine(keras.layers.Layer):
    """``x * scale + bias`` per channel: Caffe's mean subtraction, BatchNorm and Scale, folded together."""

    def __init__(self, scale: Any, bias: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale_values = np.asarray(scale, np.float32)
        self.bias_values = np.asarray(bias, np.float32)

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(shape=self.scale_values.shape, initializer="zeros", trainable=False)
        self.bias = self.add_weight(shape=self.bias_values.shape, initializer="zeros", trainable=False)
        self.scale.assign(self.scale_values)
        self.bias.assign(self.bias_values)

    def call(self, x: Any) -> Any:
        return x * self.scale + self.bias

    def get_config(self) -> dict[str, Any]:
        values = {"scale": self.scale_values.tolist(), "bias": self.bias_values.tolist()}
        return {**super().get_config(), **values}


@keras.saving.register_keras_serializable(package="edgemask")
class DilatedConv2D(keras.layers.Conv2D):
    """A VALID dilated convolution emitted as one Conv2D op with a dilation attribute.

    Keras's ``Conv2D`` goes through ``tf.nn.convolution``, which wraps a dilated convolution in
    SpaceToBatch/BatchToSpace; with a dynamic input size the converter cannot fold that back, so the
    TFLite file computed paddings at run time, ran the blocks outside XNNPACK and split its graph.
    """

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        return tf.nn.conv2d(inputs, kernel, self.strides, "VALID", dilations=self.dilation_rate)


@keras.saving.register_keras_serializable(package="edgemask")
class L2Normalize(keras.layers.Layer):
    """Caffe SSD's ``Normalize`` (across channels): ``x / sqrt(sum(x^2) + eps) * scale[c]``.

    ``tf.math.l2_normalize`` uses ``max(sum, eps)`` instead of ``sum + eps``; the two differ only when a
    pixel's whole channel vector is ~0, where both give ~0. It maps to TFLite's L2_NORMALIZATION op.
    """

    def __init__(self, scale: Any, eps: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale_values = np.asarray(scale, np.float32)
        self.eps = float(eps)

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(shape=self.scale_values.shape, initializer="zeros", trainable=False)
        self.scale.assign(self.scale_values)

    def call(self, x: Any) -> Any:
        return tf.math.l2_normalize(x, axis=-1, epsilon=self.eps) * self.scale

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale_values.tolist(), "eps": self.eps}


@keras.saving.register_keras_serializable(package="edgemask")
class NearestUpsampling(keras.layers.Layer):
    """Nearest upsampling by an integer ``factor`` on both axes: ``factor**2`` channel copies, then
    depth-to-space, which puts copy ``(dy, dx)`` at pixel ``(factor*y + dy, factor*x + dx)``.

    Keras's ``UpSampling2D`` repeats each axis with a shape computed at run time: with a dynamic input
    size the TFLite file carried SHAPE, STRIDED_SLICE, EXPAND_DIMS, TILE and RESHAPE chains for it. A
    CONCATENATION and a DEPTH_TO_SPACE need no shape, and both run in XNNPACK.
    """

    def __init__(self, factor: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x: Any) -> Any:
        copies = keras.ops.concatenate([x] * self.factor**2, axis=-1)
        return keras.ops.depth_to_space(copies, self.factor)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
