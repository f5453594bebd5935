"""Rebuild a Caffe SSD deploy network as a Keras functional model, so the Caffe detector and the Keras
classifier share one Keras -> TFLite/ONNX export path.

The model takes raw BGR 0-255 pixels (NHWC, any size when ``input_size`` is None) and subtracts the
Caffe mean itself. It ends before the SSD tail: outputs are ``loc`` (1, N, 4) and ``conf`` (1, N, C)
softmax scores, priors in Caffe's head order; ``PriorBox``/``DetectionOutput`` run in numpy at run time.

Layout: Keras works channels-last. A blob that Caffe sees as NCHW is kept NHWC ("spatial"); after a
``Permute`` or ``Flatten`` a blob is stored in Caffe's own axis order ("plain"), so every Caffe
shape-level layer (Permute, Flatten, Reshape, Concat, Softmax axes) keeps its literal meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from edgemask.export.caffe_net import Layer, conv_geometry, deploy_layers, input_name, pooling_ceil_mode
from edgemask.export.caffe_proto import CaffeFormatError, CaffeLayerWeights, Message
from edgemask.export.keras_layers import ChannelAffine, DilatedConv2D, L2Normalize

NCHW_FROM_NHWC = (0, 3, 1, 2)
SKIPPED = ("PriorBox", "DetectionOutput", "Silence", "Input", "Data", "AnnotatedData")


@dataclass
class Blob:
    """A Caffe blob during the rebuild: its Keras tensor and how to read it."""

    tensor: Any
    layout: str  # "spatial": Caffe NCHW stored as NHWC; "plain": stored in Caffe's axis order
    nonnegative: bool = False
    affine: tuple[Any, np.ndarray, np.ndarray] | None = None  # (input, scale, bias) when produced by one
    conv: tuple[Any, dict[str, Any], np.ndarray, np.ndarray] | None = None  # (input, config, kernel, bias)
    consumers: int = 0  # layers that read it so far: a conv is folded only into its sole reader


@dataclass
class CaffeKerasBuilder:
    """Walks the deploy layers in order and emits Keras layers (one job: the graph rebuild)."""

    weights: dict[str, CaffeLayerWeights]
    blobs: dict[str, Blob] = field(default_factory=dict)

    def blob(self, layer: Layer, name: str) -> Blob:
        if name not in self.blobs:
            raise CaffeFormatError(f"layer {layer.name!r}: input blob {name!r} is never computed")
        self.blobs[name].consumers += 1
        return self.blobs[name]

    def params(self, layer: Layer, count: tuple[int, ...]) -> list[np.ndarray]:
        entry = self.weights.get(layer.name)
        if entry is None:
            raise CaffeFormatError(f"layer {layer.name!r} ({layer.type}) has no weights in the caffemodel")
        if len(entry.blobs) not in count:
            raise CaffeFormatError(
                f"layer {layer.name!r}: caffemodel has {len(entry.blobs)} blobs, the prototxt needs {count}"
            )
        return entry.blobs

    def spatial(self, layer: Layer, blob: Blob) -> Any:
        if blob.layout != "spatial":
            raise CaffeFormatError(f"layer {layer.name!r}: needs an image-shaped (N, C, H, W) input")
        return blob.tensor

    def caffe_order(self, blob: Blob, name: str) -> Any:
        """The tensor in Caffe's own axis order (NCHW for image-shaped blobs)."""
        if blob.layout == "plain":
            return blob.tensor
        return keras.layers.Permute(NCHW_FROM_NHWC[1:], name=f"{name}_to_nchw")(blob.tensor)

    def set_tops(self, layer: Layer, blob: Blob) -> None:
        for top in layer.tops:
            self.blobs[top] = blob

    def add(self, layer: Layer) -> None:
        handler = getattr(self, f"layer_{layer.type.lower()}", None)
        if handler is None:
            raise CaffeFormatError(f"layer {layer.name!r}: Caffe layer type {layer.type!r} is not supported")
        handler(layer)

    # ---------------------------------------------------------------- layers

    def layer_convolution(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        x = self.spatial(layer, src)
        p = layer.params.sub("convolution_param")
        kernel_hw, stride, pad, dilation = conv_geometry(layer)
        out_channels = int(p.get("num_output", 0))
        groups = int(p.get("group", 1))
        in_channels = x.shape[-1]
        bias_term = bool(p.get("bias_term", True))
        blobs = self.params(layer, (2,) if bias_term else (1,))
        weight = blobs[0]
        expected = (out_channels, in_channels // groups, *kernel_hw)
        if weight.shape != expected:
            raise CaffeFormatError(
                f"layer {layer.name!r}: caffemodel weights have shape {weight.shape}, "
                f"the prototxt implies {expected}"
            )
        bias = blobs[1].reshape(-1) if bias_term else np.zeros(out_channels, np.float32)
        if bias.shape != (out_channels,):
            raise CaffeFormatError(
                f"layer {layer.name!r}: {bias.size} bias values for {out_channels} outputs"
            )
        if pad != (0, 0):
            x = keras.layers.ZeroPadding2D(pad, name=f"{layer.name}_pad")(x)
        config = {"strides": stride, "dilation_rate": dilation, "groups": groups, "name": layer.name}
        kernel = weight.transpose(2, 3, 1, 0)  # (O, I/g, kh, kw) -> (kh, kw, I/g, O)
        y = conv2d(x, config, kernel, bias)
        self.set_tops(layer, Blob(y, "spatial", conv=(x, config, kernel, bias)))

    def layer_batchnorm(self, layer: Layer) -> None:
        mean, var, factor = (b.reshape(-1) for b in self.params(layer, (3,)))
        s = 0.0 if factor[0] == 0 else 1.0 / factor[0]
        eps = float(layer.params.sub("batch_norm_param").get("eps", 1e-5))
        scale = 1.0 / np.sqrt(var * s + eps)
        self.affine(layer, scale, -mean * s * scale)

    def layer_scale(self, layer: Layer) -> None:
        p = layer.params.sub("scale_param")
        if len(layer.bottoms) != 1:
            raise CaffeFormatError(f"layer {layer.name!r}: Scale with a second input is not supported")
        bias_term = bool(p.get("bias_term", False))
        blobs = self.params(layer, (2,) if bias_term else (1,))
        scale = blobs[0].reshape(-1)
        self.affine(layer, scale, blobs[1].reshape(-1) if bias_term else np.zeros_like(scale))

    def affine(self, layer: Layer, scale: np.ndarray, bias: np.ndarray) -> None:
        """Per-channel affine, folded into the affine before it, or the conv if nothing else reads it."""
        src = self.blob(layer, layer.bottoms[0])
        x = self.spatial(layer, src)
        channels = x.shape[-1]
        if scale.shape != (channels,) or bias.shape != (channels,):
            raise CaffeFormatError(
                f"layer {layer.name!r}: {scale.size} per-channel values for a {channels}-channel input"
            )
        if src.conv is not None and src.consumers == 1:
            conv_in, config, kernel, conv_bias = src.conv
            kernel, conv_bias = kernel * scale, conv_bias * scale + bias
            y = conv2d(conv_in, {**config, "name": f"{config['name']}_{layer.name}"}, kernel, conv_bias)
            self.set_tops(layer, Blob(y, "spatial", conv=(conv_in, config, kernel, conv_bias)))
            return
        if src.affine is not None:
            aff_in, s0, b0 = src.affine
            scale, bias, x = s0 * scale, b0 * scale + bias, aff_in
        y = ChannelAffine(scale, bias, name=layer.name)(x)
        self.set_tops(layer, Blob(y, "spatial", affine=(x, scale, bias)))

    def layer_relu(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        slope = float(layer.params.sub("relu_param").get("negative_slope", 0.0))
        if slope:
            y = keras.layers.LeakyReLU(negative_slope=slope, name=layer.name)(src.tensor)
        else:
            y = keras.layers.ReLU(name=layer.name)(src.tensor)
        self.set_tops(layer, Blob(y, src.layout, nonnegative=slope == 0.0))

    def layer_pooling(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        x = self.spatial(layer, src)
        p = layer.params.sub("pooling_param")
        method = str(p.get("pool", "MAX"))
        kernel, stride, pad, _ = conv_geometry(layer)
        if method != "MAX":
            raise CaffeFormatError(f"layer {layer.name!r}: only MAX pooling is supported, not {method}")
        ceil = pooling_ceil_mode(layer)
        if ceil and any(pad[i] >= kernel[i] - stride[i] + 1 for i in range(2)):
            raise CaffeFormatError(f"layer {layer.name!r}: pad >= kernel - stride + 1 is unsupported")
        # Caffe rounds the output size up: pad the far side by stride-1 so VALID pooling rounds down to it.
        extra = (stride[0] - 1, stride[1] - 1) if ceil else (0, 0)
        if pad != (0, 0) or extra != (0, 0):
            if not src.nonnegative:
                raise CaffeFormatError(
                    f"layer {layer.name!r}: padded max pooling of signed values is unsupported"
                )
            padding = ((pad[0], pad[0] + extra[0]), (pad[1], pad[1] + extra[1]))
            x = keras.layers.ZeroPadding2D(padding, name=f"{layer.name}_pad")(x)
        y = keras.layers.MaxPooling2D(kernel, stride, padding="valid", name=layer.name)(x)
        self.set_tops(layer, Blob(y, "spatial", nonnegative=True))

    def layer_eltwise(self, layer: Layer) -> None:
        srcs = [self.blob(layer, b) for b in layer.bottoms]
        p = layer.params.sub("eltwise_param")
        op = str(p.get("operation", "SUM"))
        coeffs = [float(c) for c in p.all("coeff")]
        if len({s.layout for s in srcs}) != 1:
            raise CaffeFormatError(f"layer {layer.name!r}: inputs with different layouts")
        tensors = [s.tensor for s in srcs]
        if op == "SUM" and any(c != 1.0 for c in coeffs):
            raise CaffeFormatError(f"layer {layer.name!r}: Eltwise SUM with coefficients is not supported")
        merge = {"SUM": keras.layers.Add, "PROD": keras.layers.Multiply, "MAX": keras.layers.Maximum}.get(op)
        if merge is None:
            raise CaffeFormatError(f"layer {layer.name!r}: Eltwise operation {op} is not supported")
        y = merge(name=layer.name)(tensors)
        self.set_tops(layer, Blob(y, srcs[0].layout, nonnegative=all(s.nonnegative for s in srcs)))

    def layer_normalize(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        x = self.spatial(layer, src)
        p = layer.params.sub("norm_param")
        if p.get("across_spatial", True):
            raise CaffeFormatError(f"layer {layer.name!r}: Normalize across_spatial is not supported")
        (scale,) = self.params(layer, (1,))
        scale = scale.reshape(-1)
        channels = x.shape[-1]
        if scale.size == 1:
            scale = np.full(channels, scale[0], np.float32)
        if scale.shape != (channels,):
            raise CaffeFormatError(f"layer {layer.name!r}: {scale.size} scales for {channels} channels")
        y = L2Normalize(scale, float(p.get("eps", 1e-10)), name=layer.name)(x)
        self.set_tops(layer, Blob(y, "spatial"))

    def layer_concat(self, layer: Layer) -> None:
        srcs = [self.blob(layer, b) for b in layer.bottoms]
        p = layer.params.sub("concat_param")
        axis = int(p.get("axis", p.get("concat_dim", 1)))
        layouts = {s.layout for s in srcs}
        if layouts == {"spatial"}:
            if axis != 1:
                raise CaffeFormatError(f"layer {layer.name!r}: only channel concat of images is supported")
            y = keras.layers.Concatenate(axis=-1, name=layer.name)([s.tensor for s in srcs])
            self.set_tops(layer, Blob(y, "spatial", nonnegative=all(s.nonnegative for s in srcs)))
            return
        tensors = [self.caffe_order(s, f"{layer.name}_{i}") for i, s in enumerate(srcs)]
        y = keras.layers.Concatenate(axis=axis, name=layer.name)(tensors)
        self.set_tops(layer, Blob(y, "plain"))

    def layer_permute(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        order = tuple(int(o) for o in layer.params.sub("permute_param").all("order"))
        rank = len(src.tensor.shape)
        order = order + tuple(i for i in range(rank) if i not in order)
        if order[0] != 0:
            raise CaffeFormatError(f"layer {layer.name!r}: permuting the batch axis is not supported")
        stored = NCHW_FROM_NHWC if src.layout == "spatial" else tuple(range(rank))
        perm = tuple(stored[o] for o in order)
        y = src.tensor
        if perm != tuple(range(rank)):
            y = keras.layers.Permute(perm[1:], name=layer.name)(y)
        self.set_tops(layer, Blob(y, "plain", nonnegative=src.nonnegative))

    def layer_flatten(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        p = layer.params.sub("flatten_param")
        if int(p.get("axis", 1)) != 1 or int(p.get("end_axis", -1)) != -1:
            raise CaffeFormatError(f"layer {layer.name!r}: only Flatten from axis 1 to the end is supported")
        y = keras.layers.Reshape((-1,), name=layer.name)(self.caffe_order(src, layer.name))
        self.set_tops(layer, Blob(y, "plain", nonnegative=src.nonnegative))

    def layer_reshape(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        p = layer.params.sub("reshape_param")
        dims = [int(d) for d in p.sub("shape").all("dim")]
        whole = int(p.get("axis", 0)) == 0 and int(p.get("num_axes", -1)) == -1
        if not whole or not dims or dims[0] not in (0, 1):
            raise CaffeFormatError(
                f"layer {layer.name!r}: only a whole-shape Reshape keeping the batch works"
            )
        x = self.caffe_order(src, layer.name)
        target = []
        for i, d in enumerate(dims[1:], start=1):
            if d == 0:
                d = x.shape[i]
                if d is None:
                    raise CaffeFormatError(f"layer {layer.name!r}: 'copy' of a dynamic dimension")
            target.append(d)
        y = keras.layers.Reshape(tuple(target), name=layer.name)(x)
        self.set_tops(layer, Blob(y, "plain", nonnegative=src.nonnegative))

    def layer_softmax(self, layer: Layer) -> None:
        src = self.blob(layer, layer.bottoms[0])
        axis = int(layer.params.sub("softmax_param").get("axis", 1))
        if src.layout == "spatial":
            axis = {1: -1, 2: 1, 3: 2}.get(axis, axis)
        y = keras.layers.Softmax(axis=axis, name=layer.name)(src.tensor)
        self.set_tops(layer, Blob(y, src.layout, nonnegative=True))

    def layer_dropout(self, layer: Layer) -> None:
        self.set_tops(layer, self.blob(layer, layer.bottoms[0]))

    def layer_split(self, layer: Layer) -> None:
        self.set_tops(layer, self.blob(layer, layer.bottoms[0]))


def conv2d(x: Any, config: dict[str, Any], kernel: np.ndarray, bias: np.ndarray) -> Any:
    """A VALID convolution with fixed weights; depthwise when every group is one input channel."""
    in_channels, out_channels, groups = x.shape[-1], kernel.shape[-1], config["groups"]
    common = {"strides": config["strides"], "dilation_rate": config["dilation_rate"], "name": config["name"]}
    if groups > 1 and groups == in_channels and kernel.shape[2] == 1:
        multiplier = out_channels // in_channels
        layer = keras.layers.DepthwiseConv2D(kernel.shape[:2], depth_multiplier=multiplier, **common)
        weights = [kernel.reshape(*kernel.shape[:2], in_channels, multiplier), bias]
    else:
        dilated = (
            groups == 1 and tuple(config["dilation_rate"]) != (1, 1) and tuple(config["strides"]) == (1, 1)
        )
        conv_class = DilatedConv2D if dilated else keras.layers.Conv2D
        layer = conv_class(out_channels, kernel.shape[:2], groups=groups, **common)
        weights = [kernel, bias]
    y = layer(x)
    layer.set_weights([w.astype(np.float32) for w in weights])
    return y


def build_caffe_ssd(
    net: Message,
    weights: dict[str, CaffeLayerWeights],
    mean: tuple[float, float, float],
    input_size: tuple[int, int] | None = None,
) -> keras.Model:
    """The Keras model ``BGR pixels -> (loc, conf)``; raises :class:`CaffeFormatError` on any mismatch."""
    layers = deploy_layers(net)
    source = input_name(net, layers)
    h, w = input_size if input_size else (None, None)
    image = keras.Input(shape=(h, w, 3), batch_size=1, name="image", dtype="float32")
    builder = CaffeKerasBuilder(weights)
    mean_subtracted = ChannelAffine(np.ones(3), -np.asarray(mean, np.float32), name="mean")(image)
    builder.blobs[source] = Blob(mean_subtracted, "spatial", affine=(image, np.ones(3), -np.asarray(mean)))
    detection = None
    tail: set[str] = set()  # blobs of the SSD tail (priors), which the runtime computes itself
    for layer in layers:
        if layer.type == "DetectionOutput":
            detection = layer
        if layer.type in SKIPPED or any(b in tail for b in layer.bottoms):
            if layer.type != "Input":
                tail.update(layer.tops)
            continue
        builder.add(layer)
    if detection is None or len(detection.bottoms) < 2:
        raise CaffeFormatError("no DetectionOutput layer: not a Caffe SSD network")
    num_classes = int(detection.params.sub("detection_output_param").get("num_classes", 0))
    if num_classes < 2:
        raise CaffeFormatError(f"layer {detection.name!r}: num_classes must be >= 2")
    loc_blob = builder.blob(detection, detection.bottoms[0])
    conf_blob = builder.blob(detection, detection.bottoms[1])
    loc = keras.layers.Reshape((-1, 4), name="loc")(builder.caffe_order(loc_blob, "loc_src"))
    conf = keras.layers.Reshape((-1, num_classes), name="conf")(builder.caffe_order(conf_blob, "conf_src"))
    return keras.Model(image, {"loc": loc, "conf": conf}, name="face_detector")
