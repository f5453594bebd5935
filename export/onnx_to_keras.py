"""Rebuild a small ONNX CNN (YuNet's op set) as a Keras functional model, so YuNet goes through the same
Keras -> TFLite/ONNX export path as the res10 detector and the classifier.

The model takes raw BGR 0-255 pixels, NHWC float32 (the same values the ONNX file gets as NCHW), any
size when ``size`` is None, and returns a dict with one tensor per ONNX output, same names, shapes and
cell order.

Layout: Keras works channels-last. A tensor that ONNX sees as NCHW is kept NHWC ("nhwc"); after a
Transpose or Reshape a tensor is stored in ONNX's own axis order ("plain"), so shape-level ops keep their
literal meaning. ``Transpose(0, 2, 3, 1)`` of an "nhwc" tensor therefore costs nothing: the data already
is in that order. Shape arithmetic (Shape/Gather/Unsqueeze/Concat feeding Reshape) is folded while
building, with unknown sizes kept symbolic, and 2x upsampling needs no sizes, so YuNet's TFLite file holds
no shape ops even with a dynamic H/W.

Supported: Conv (plain and depthwise), Relu, Sigmoid, Add, MaxPool, Resize (nearest, integer scales),
Transpose, Reshape, Concat, and the shape ops Shape, Gather, Unsqueeze, Constant, Identity. Anything
else, or an attribute value outside what is mapped exactly, raises :class:`OnnxConversionError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import onnx
from onnx import numpy_helper

from edgemask.export.keras_layers import NearestUpsampling
from edgemask.export.onnx_graph import (
    NHWC_ORDER,
    GraphWalker,
    OnnxConversionError,
    ShapeVec,
    Value,
    keras_name,
    text,
)


@dataclass
class OnnxKerasBuilder(GraphWalker):
    """Walks the ONNX nodes in order and emits Keras layers (one job: the graph rebuild)."""

    def layer_name(self, node: onnx.NodeProto, suffix: str = "") -> str:
        """Graph outputs name their final layer; other layers take the node name (made unique)."""
        base = node.output[0] if node.output[0] in self.outputs and not suffix else node.name + suffix
        name = keras_name(base, f"{node.op_type}_{len(self.names)}{suffix}")
        while name in self.names:
            name += "_"
        self.names.add(name)
        return name

    def spatial(self, node: onnx.NodeProto, value: Value) -> Any:
        if value.layout != "nhwc":
            raise self.fail(node, "needs an image-shaped (N, C, H, W) input, got a reshaped tensor")
        return value.tensor

    def onnx_order(self, value: Value, name: str) -> Any:
        """The tensor with its axes in ONNX order (a Permute for image-shaped tensors)."""
        if value.layout == "plain":
            return value.tensor
        return keras.layers.Permute((3, 1, 2), name=f"{name}_to_nchw")(value.tensor)

    def add(self, node: onnx.NodeProto) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise self.fail(node, f"op domain {node.domain!r} is not supported")
        handler = getattr(self, f"op_{node.op_type.lower()}", None)
        if handler is None:
            raise self.fail(node, f"ONNX op {node.op_type!r} is not supported")
        handler(node)

    def op_conv(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(
            node,
            {
                "auto_pad": None,
                "dilations": None,
                "group": None,
                "kernel_shape": None,
                "pads": None,
                "strides": None,
            },
        )
        src = self.value(node, 0)
        x = self.spatial(node, src)
        weight = self.const(node, 1)
        if weight is None or weight.ndim != 4:
            raise self.fail(node, "only 2-D convolutions with constant weights are supported")
        out_ch, in_per_group, kh, kw = weight.shape
        bias = self.const(node, 2)
        bias = np.zeros(out_ch, np.float32) if bias is None else bias.reshape(-1)
        groups = int(attrs.get("group", 1))
        in_ch = x.shape[-1]
        if in_ch != in_per_group * groups or bias.shape != (out_ch,):
            raise self.fail(node, f"weights {weight.shape} / bias {bias.shape} do not fit {in_ch} channels")
        if tuple(attrs.get("kernel_shape", (kh, kw))) != (kh, kw):
            raise self.fail(node, "kernel_shape does not match the weights")
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        padding, x = self.padding(node, attrs, x, (kh, kw), strides, dilations, pad_nonnegative=False)
        name = self.layer_name(node)
        kernel = weight.transpose(2, 3, 1, 0)  # (O, I/g, kh, kw) -> (kh, kw, I/g, O)
        common = {"strides": strides, "dilation_rate": dilations, "padding": padding, "name": name}
        if groups == 1:
            layer = keras.layers.Conv2D(out_ch, (kh, kw), **common)
            weights = [kernel, bias]
        elif groups == in_ch and out_ch % groups == 0:
            # ONNX output channel g*m + j reads input channel g: Keras's depthwise channel order too.
            layer = keras.layers.DepthwiseConv2D((kh, kw), depth_multiplier=out_ch // groups, **common)
            weights = [kernel.reshape(kh, kw, in_ch, out_ch // groups), bias]
        else:
            raise self.fail(node, f"grouped convolution ({groups} groups of {in_per_group}) is not supported")
        y = layer(x)
        layer.set_weights([w.astype(np.float32) for w in weights])
        self.values[node.output[0]] = Value(y, "nhwc")

    def padding(
        self,
        node: onnx.NodeProto,
        attrs: dict[str, Any],
        x: Any,
        kernel: tuple[int, int],
        strides: tuple[int, ...],
        dilations: tuple[int, ...],
        pad_nonnegative: bool,
        ceil_mode: bool = False,
    ) -> tuple[str, Any]:
        """Keras padding mode, and ``x`` zero-padded explicitly where TF's SAME would differ.

        TF's SAME puts the odd pixel at the far side (stride 2 on even sizes: 0 before, 1 after), while
        PyTorch pads both sides alike; only stride 1 with symmetric pads of ``dilation*(k-1)/2`` is the
        same in both. ``pad_nonnegative`` (max pooling) only allows zero padding for inputs >= 0, where it
        equals ONNX's -inf padding.
        """
        auto_pad = text(attrs.get("auto_pad", "NOTSET"))
        if auto_pad not in ("NOTSET", "VALID"):
            raise self.fail(node, f"auto_pad={auto_pad} is not supported (use explicit pads)")
        top, left, bottom, right = (int(p) for p in attrs.get("pads", (0, 0, 0, 0)))
        if auto_pad == "VALID":
            top = left = bottom = right = 0
        if ceil_mode:
            # Pad the far side by stride-1 so VALID pooling's floor becomes ONNX's ceil. ONNX also drops
            # a last window starting in the end padding; with pad_end <= kernel - stride none does.
            if bottom > kernel[0] - strides[0] or right > kernel[1] - strides[1]:
                raise self.fail(node, "ceil_mode with end pads > kernel - stride is not supported")
            bottom, right = bottom + strides[0] - 1, right + strides[1] - 1
        pads = (top, left, bottom, right)
        if pads == (0, 0, 0, 0):
            return "valid", x
        same = all(
            s == 1 and k % 2 == 1 and (p0, p1) == (d * (k - 1) // 2,) * 2
            for s, k, d, p0, p1 in zip(strides, kernel, dilations, (top, left), (bottom, right), strict=True)
        )
        if same and not ceil_mode:
            return "same", x
        if pad_nonnegative and not self.values[node.input[0]].nonnegative:
            raise self.fail(node, "padded max pooling of possibly negative values is not supported")
        pad_layer = keras.layers.ZeroPadding2D(
            ((top, bottom), (left, right)), name=self.layer_name(node, "_pad")
        )
        return "valid", pad_layer(x)

    def op_maxpool(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(
            node,
            {
                "auto_pad": None,
                "ceil_mode": None,
                "dilations": [1, 1],
                "kernel_shape": None,
                "pads": None,
                "storage_order": 0,
                "strides": None,
            },
        )
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, "the Indices output is not supported")
        src = self.value(node, 0)
        x = self.spatial(node, src)
        kernel = tuple(int(k) for k in attrs["kernel_shape"])
        strides = tuple(int(s) for s in attrs.get("strides", (1, 1)))
        ceil = bool(attrs.get("ceil_mode", 0))
        padding, x = self.padding(
            node, attrs, x, kernel, strides, (1, 1), pad_nonnegative=True, ceil_mode=ceil
        )
        y = keras.layers.MaxPooling2D(kernel, strides, padding=padding, name=self.layer_name(node))(x)
        self.values[node.output[0]] = Value(y, "nhwc", nonnegative=src.nonnegative)

    def op_resize(self, node: onnx.NodeProto) -> None:
        """Nearest upsampling by integer factors: equal factors (YuNet's 2x) as channel copies +
        depth-to-space, which leaves no shape ops in a dynamic-size TFLite file; unequal ones as
        ``UpSampling2D``, whose TFLite form computes shapes at run time. ``keras.ops.image.resize``
        cannot take a size computed from a dynamic shape."""
        attrs = self.check_attrs(
            node,
            {
                "mode": "nearest",
                "coordinate_transformation_mode": None,
                "nearest_mode": None,
                "cubic_coeff_a": None,
                "exclude_outside": 0,
                "extrapolation_value": None,
            },
        )
        transform = text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        nearest = text(attrs.get("nearest_mode", "round_prefer_floor"))
        # With an integer factor f, output pixel x reads floor(x / f) under asymmetric/floor, and
        # round((x + 0.5) / f - 0.5) under half-pixel, whose argument stays strictly within 0.5 of
        # floor(x / f): every rounding gives the same pixel. Other combinations are not mapped.
        exact = (transform == "asymmetric" and nearest == "floor") or transform in (
            "half_pixel",
            "pytorch_half_pixel",
        )
        if self.opset < 11:
            exact, transform = True, "asymmetric"  # opset 10: asymmetric/floor by definition
        if not exact:
            raise self.fail(node, f"nearest resize with {transform}/{nearest} is not supported")
        src = self.value(node, 0)
        x = self.spatial(node, src)
        scales = self.const(node, 1 if self.opset < 11 else 2)
        if scales is None or scales.size == 0:
            raise self.fail(node, "Resize by 'sizes' is not supported; only constant integer 'scales'")
        factors = scales.reshape(-1).astype(np.float64)
        integer = factors.shape == (4,) and np.all(factors == np.round(factors)) and np.all(factors >= 1)
        if not integer or tuple(factors[:2]) != (1.0, 1.0):
            raise self.fail(node, f"scales {factors.tolist()}: only integer H/W upsampling is supported")
        fh, fw = (int(f) for f in factors[2:])
        name = self.layer_name(node)
        if fh == fw:
            y = NearestUpsampling(fh, name=name)(x)
        else:
            y = keras.layers.UpSampling2D((fh, fw), interpolation="nearest", name=name)(x)
        self.values[node.output[0]] = Value(y, "nhwc", nonnegative=src.nonnegative)

    def op_relu(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {})
        src = self.value(node, 0)
        y = keras.layers.ReLU(name=self.layer_name(node))(src.tensor)
        self.values[node.output[0]] = Value(y, src.layout, nonnegative=True)

    def op_sigmoid(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {})
        src = self.value(node, 0)
        y = keras.layers.Activation("sigmoid", name=self.layer_name(node))(src.tensor)
        self.values[node.output[0]] = Value(y, src.layout, nonnegative=True)

    def op_add(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {})
        a, b = self.value(node, 0), self.value(node, 1)
        if a.layout != b.layout or tuple(a.tensor.shape[1:]) != tuple(b.tensor.shape[1:]):
            raise self.fail(node, "only same-shape, same-layout Add is supported (no broadcasting)")
        y = keras.layers.Add(name=self.layer_name(node))([a.tensor, b.tensor])
        self.values[node.output[0]] = Value(y, a.layout, nonnegative=a.nonnegative and b.nonnegative)

    def op_transpose(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(node, {"perm": None})
        src = self.value(node, 0)
        rank = len(src.tensor.shape)
        perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
        order = src.order
        # Output ONNX axis i is input ONNX axis perm[i], which is stored at position order.index(perm[i]).
        stored = tuple(order.index(p) for p in perm)
        if stored[0] != 0:
            raise self.fail(node, f"perm {perm} moves the batch axis")
        y = src.tensor
        if stored != tuple(range(rank)):
            y = keras.layers.Permute(stored[1:], name=self.layer_name(node))(y)
        self.values[node.output[0]] = Value(y, "plain", nonnegative=src.nonnegative)

    def op_reshape(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {"allowzero": 0})
        src = self.value(node, 0)
        target = self.shape_vec(node, 1).entries
        x_shape = self.onnx_shape(node.input[0], src)
        if not target:
            raise self.fail(node, "reshape to a scalar is not supported")
        first = x_shape[0] if target[0] == 0 else target[0]
        if first != x_shape[0]:
            raise self.fail(node, f"target {target}: the first entry must keep the batch size")
        rest = []
        for i, entry in enumerate(target[1:], start=1):
            if entry == 0:
                entry = x_shape[i]
            if not isinstance(entry, int):
                raise self.fail(node, f"target {target}: input-dependent sizes other than the batch")
            rest.append(entry)
        x = self.onnx_order(src, self.layer_name(node, "_src"))
        y = keras.layers.Reshape(tuple(rest), name=self.layer_name(node))(x)
        self.values[node.output[0]] = Value(y, "plain", nonnegative=src.nonnegative)

    def op_concat(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(node, {"axis": None})
        axis = int(attrs["axis"])
        if all(self.is_static(name) for name in node.input):
            vecs = [self.shape_vec(node, i) for i in range(len(node.input))]
            if axis not in (0, -1) or any(v.scalar for v in vecs):
                raise self.fail(node, "shape-vector Concat must join 1-D vectors on axis 0")
            self.static[node.output[0]] = ShapeVec(tuple(e for v in vecs for e in v.entries))
            return
        srcs = [self.value(node, i) for i in range(len(node.input))]
        rank = len(srcs[0].tensor.shape)
        axis %= rank
        if axis == 0:
            raise self.fail(node, "concatenation along the batch axis is not supported")
        if {s.layout for s in srcs} == {"nhwc"}:
            keras_axis = NHWC_ORDER.index(axis)
            tensors = [s.tensor for s in srcs]
            layout = "nhwc"
        else:
            keras_axis, layout = axis, "plain"
            tensors = [self.onnx_order(s, self.layer_name(node, f"_{i}")) for i, s in enumerate(srcs)]
        y = keras.layers.Concatenate(axis=keras_axis, name=self.layer_name(node))(tensors)
        self.values[node.output[0]] = Value(y, layout, nonnegative=all(s.nonnegative for s in srcs))


def build_keras(
    onnx_path: str | os.PathLike | onnx.ModelProto,
    size: tuple[int, int] | None = None,
    batch_size: int | None = 1,
    name: str = "yunet",
) -> keras.Model:
    """The Keras model ``image (N, H, W, C) raw pixels -> {output name: tensor}`` of an ONNX CNN.

    ``size`` is ``(height, width)``; None keeps both dynamic (YuNet needs multiples of 32). Outputs keep
    the ONNX names, shapes and element order. Raises :class:`OnnxConversionError` on anything unmapped.
    """
    model = onnx_path if isinstance(onnx_path, onnx.ModelProto) else read_onnx(onnx_path)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxConversionError(f"expected one image input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    channels = dims[1].dim_value if len(dims) == 4 else 0
    if channels <= 0:
        raise OnnxConversionError(f"input {inputs[0].name!r}: expected (N, C, H, W) with a fixed C")
    h, w = size if size else (None, None)
    image = keras.Input(shape=(h, w, channels), batch_size=batch_size, name="image", dtype="float32")
    builder = OnnxKerasBuilder(opset, consts, {o.name for o in graph.output}, names={"image"})
    builder.values[inputs[0].name] = Value(image, "nhwc")
    for node in graph.node:
        builder.add(node)
    outputs = {}
    for out in graph.output:
        value = builder.values.get(out.name)
        if value is None:
            raise OnnxConversionError(f"graph output {out.name!r} is not a computed tensor")
        outputs[out.name] = builder.onnx_order(value, keras_name(out.name, "output"))
    return keras.Model(image, outputs, name=name)


def read_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """The parsed file; a truncated or corrupt one is an :class:`OnnxConversionError` naming why."""
    try:
        return onnx.load(os.fspath(path))
    except Exception as e:  # protobuf's DecodeError, or an OSError
        raise OnnxConversionError(f"not a readable ONNX file ({type(e).__name__}: {e})") from e
