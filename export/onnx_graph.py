"""Reading an ONNX graph for a rebuild: attributes, tensor layouts, and the shape arithmetic
(Shape/Gather/Unsqueeze/Concat feeding a Reshape) folded while walking the graph, so that no shape ops
reach the rebuilt model. :mod:`edgemask.export.onnx_to_keras` emits the layers on top of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

NHWC_ORDER = (0, 2, 3, 1)
"""Stored axis i of an "nhwc" tensor is ONNX axis ``NHWC_ORDER[i]``."""
BATCH = "batch"
"""Symbol of a dynamic batch size: no supported op changes or moves the batch axis, so it is shared."""


class OnnxConversionError(ValueError):
    """The ONNX graph uses an op, attribute or pattern this rebuild does not map exactly."""


@dataclass(frozen=True)
class Dim:
    """An input-dependent size: axis ``axis`` (ONNX order) of tensor ``tensor``."""

    tensor: str
    axis: int


Entry = int | Dim


@dataclass(frozen=True)
class ShapeVec:
    """A small int vector (or scalar) known at build time, possibly with symbolic entries."""

    entries: tuple[Entry, ...]
    scalar: bool = False


@dataclass
class Value:
    """A Keras tensor and how to read it."""

    tensor: Any
    layout: str  # "nhwc": ONNX NCHW stored channels-last; "plain": stored in ONNX axis order
    nonnegative: bool = False

    @property
    def order(self) -> tuple[int, ...]:
        rank = len(self.tensor.shape)
        return NHWC_ORDER if self.layout == "nhwc" else tuple(range(rank))


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def keras_name(raw: str, fallback: str) -> str:
    """A valid, readable Keras layer name from an ONNX node or tensor name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", raw or fallback)
    return name if name[:1].isalpha() else f"n_{name}"


@dataclass
class GraphWalker:
    """The state of one walk over an ONNX graph: computed tensors (``values``), build-time shape vectors
    (``static``), constants, and the checks every op handler shares."""

    opset: int
    consts: dict[str, np.ndarray]
    outputs: set[str]
    values: dict[str, Value] = field(default_factory=dict)
    static: dict[str, ShapeVec] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def fail(self, node: onnx.NodeProto, message: str) -> OnnxConversionError:
        return OnnxConversionError(f"node {node.name or '?'} ({node.op_type}): {message}")

    def value(self, node: onnx.NodeProto, index: int) -> Value:
        name = node.input[index] if index < len(node.input) else ""
        if name in self.values:
            return self.values[name]
        if name in self.consts or name in self.static:
            raise self.fail(node, f"input {name!r} is a constant; only computed tensors are supported here")
        raise self.fail(node, f"input {name!r} is never computed")

    def const(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        """A constant input (initializer or Constant node); None when absent or empty-named."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise self.fail(node, f"input {name!r} must be a constant (initializer) for this rebuild")
        return self.consts[name]

    def shape_vec(self, node: onnx.NodeProto, index: int) -> ShapeVec:
        name = node.input[index]
        if name in self.static:
            return self.static[name]
        if name in self.consts:
            array = self.consts[name]
            if array.dtype.kind not in "iu" or array.ndim > 1:
                raise self.fail(node, f"input {name!r} is not a 0-D/1-D integer constant")
            return ShapeVec(tuple(int(v) for v in array.reshape(-1)), scalar=array.ndim == 0)
        raise self.fail(node, f"input {name!r} must be known while building (shape arithmetic only)")

    def is_static(self, name: str) -> bool:
        return name in self.static or name in self.consts

    def check_attrs(self, node: onnx.NodeProto, allowed: dict[str, Any]) -> dict[str, Any]:
        """The node's attributes; unknown ones raise, and values other than ``allowed[k]`` (if given) too."""
        attrs = attributes(node)
        for key, value in attrs.items():
            if key not in allowed:
                raise self.fail(node, f"attribute {key!r} is not supported")
            want = allowed[key]
            if want is not None and (text(value) if isinstance(value, bytes) else value) != want:
                raise self.fail(node, f"attribute {key}={text(value)!r} is not supported (only {want!r})")
        return attrs

    def onnx_shape(self, name: str, value: Value) -> tuple[Entry, ...]:
        """The tensor's shape in ONNX order; unknown sizes as :class:`Dim`."""
        stored = tuple(value.tensor.shape)
        dims = [stored[value.order.index(a)] for a in range(len(stored))]
        return tuple(Dim(BATCH if a == 0 else name, a) if d is None else int(d) for a, d in enumerate(dims))

    def op_shape(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {"start": 0})
        src = self.value(node, 0)
        self.static[node.output[0]] = ShapeVec(self.onnx_shape(node.input[0], src))

    def op_gather(self, node: onnx.NodeProto) -> None:
        self.check_attrs(node, {"axis": 0})
        data, indices = self.shape_vec(node, 0), self.shape_vec(node, 1)
        if data.scalar:
            raise self.fail(node, "Gather from a scalar")
        size = len(data.entries)
        picked = []
        for i in indices.entries:
            if not isinstance(i, int) or not -size <= i < size:
                raise self.fail(node, f"index {i} out of range for a {size}-vector")
            picked.append(data.entries[i])
        self.static[node.output[0]] = ShapeVec(tuple(picked), scalar=indices.scalar)

    def op_unsqueeze(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(node, {"axes": None})
        axes = attrs.get("axes") if self.opset < 13 else self.shape_vec(node, 1).entries
        vec = self.shape_vec(node, 0)
        if not vec.scalar or list(axes or []) not in ([0], [-1]):
            raise self.fail(node, "only scalar -> 1-vector Unsqueeze of shape values is supported")
        self.static[node.output[0]] = ShapeVec(vec.entries)

    def op_constant(self, node: onnx.NodeProto) -> None:
        attrs = self.check_attrs(node, {"value": None})
        if "value" not in attrs:
            raise self.fail(node, "only Constant with a 'value' tensor is supported")
        self.consts[node.output[0]] = numpy_helper.to_array(attrs["value"])

    def op_identity(self, node: onnx.NodeProto) -> None:
        name = node.input[0]
        if name in self.values:
            self.values[node.output[0]] = self.values[name]
        else:
            self.static[node.output[0]] = self.shape_vec(node, 0)
