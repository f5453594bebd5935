"""Keras -> ONNX: fp32 through tf2onnx, and int8 QDQ (uint8 activations, int8 per-channel weights) through
ONNX Runtime's static quantization, calibrated on real images.

Static QDQ rather than ``quantize_dynamic``: dynamic quantization re-measures activations on every call
and ran 3-13x slower than fp32 on this project's models.

``float_stem=k`` keeps the nodes up to the k-th compute op float, as for TFLite (see
:mod:`export.tflite`). The tail after the last weight layers (the detector's per-head reshapes, the
concat of all heads and the softmax) always stays float: one uint8 scale shared by every head's
outputs cost the detector 2-3 % of its detections on scenes_dev, and these ops move a few kilobytes.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from edgemask.core.integrity import placeholder_checksum, seal_onnx
from edgemask.core.metadata import METADATA_KEY, ModelMeta
from edgemask.export.calibration import Calibration
from edgemask.export.sources import ExportSource

PRECISIONS = ("fp32", "int8")
OPSET = 17
INPUT_NAME = "image"
WEIGHT_OPS = frozenset({"Conv", "Gemm", "MatMul"})
COMPUTE_OPS = WEIGHT_OPS | {"Add", "Mul"}


class OnnxExportError(RuntimeError):
    """tf2onnx or the quantizer refused the model."""


def convert_fp32(source: ExportSource):
    """The fp32 ``onnx.ModelProto`` with input ``image`` of ``source.input_shape`` (None = dynamic)."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec(source.input_shape, tf.float32, name=INPUT_NAME)]
    model = source.model

    @tf.function(input_signature=spec)
    def serve(image):
        return model(image, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    except Exception as e:  # tf2onnx raises assorted errors for unsupported graphs
        raise OnnxExportError(f"ONNX conversion of {source.name} failed: {e}") from e
    return nearest_resizes(proto)


def nearest_resizes(model):
    """Each ``Concat`` of k*k copies of one tensor on the channel axis that only feeds a ``DepthToSpace``
    of block k (the TFLite-friendly nearest upsampling of :class:`export.keras_layers.NearestUpsampling`)
    as one nearest ``Resize`` by k, the op ONNX Runtime runs in its blocked layout: YuNet's fp32 file ran
    ~6 % slower with the pair (1 thread, 640x480)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type != "DepthToSpace":
            continue
        block = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "blocksize")
        concat = producers.get(node.input[0])
        if (
            concat is None
            or concat.op_type != "Concat"
            or next(helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis") != 1
            or len(concat.input) != block * block
            or len(set(concat.input)) != 1
            or readers[concat.output[0]] != 1
            or concat.output[0] in outputs
        ):
            continue
        scales = f"{node.name}/scales"
        graph.initializer.append(numpy_helper.from_array(np.array([1, 1, block, block], np.float32), scales))
        resize = helper.make_node(
            "Resize",
            [concat.input[0], "", scales],
            list(node.output),
            name=f"{node.name}/Resize",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        graph.node.insert(list(graph.node).index(node), resize)
        graph.node.remove(node)
        graph.node.remove(concat)
    onnx.checker.check_model(model)
    return model


def quantize_int8(fp32_model, calibration: Calibration, float_stem: int = 0):
    """Static QDQ quantization of an fp32 ``ModelProto`` with ``calibration`` batches."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter(calibration.samples)

        def get_next(self):
            x = next(self.samples, None)
            return None if x is None else {INPUT_NAME: x}

    with tempfile.TemporaryDirectory(prefix="edgemask-onnx-") as tmp:
        fp32_path, pre_path, q_path = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(fp32_model, fp32_path)
        try:
            quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True)
            quantize_static(
                str(pre_path),
                str(q_path),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=float_nodes(onnx.load(pre_path), float_stem),
            )
        except Exception as e:  # the quantizer raises assorted errors
            raise OnnxExportError(f"ONNX int8 quantization failed: {e}") from e
        return onnx.load(q_path)


def float_nodes(model, float_stem: int) -> list[str]:
    """Nodes left unquantized: the first ``float_stem`` compute ops (and what precedes them), the tail."""
    stem: list[str] = []
    computed = 0
    for node in model.graph.node:
        if computed >= float_stem:
            break
        stem.append(node.name)
        computed += node.op_type in COMPUTE_OPS
    return stem + tail_nodes(model)


def tail_nodes(model) -> list[str]:
    """Names of the nodes between the graph outputs and the last weight layers (Conv, Gemm, MatMul)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    tail: list[str] = []
    pending = [o.name for o in model.graph.output]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.op_type in WEIGHT_OPS or node.name in tail:
            continue
        tail.append(node.name)
        pending.extend(node.input)
    return tail


def convert(
    source: ExportSource, precision: str, calibration: Calibration | None = None, float_stem: int = 0
):
    if precision not in PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}; choose from {PRECISIONS}")
    model = convert_fp32(source)
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 export needs calibration images")
        model = quantize_int8(model, calibration, float_stem)
    return model


def output_names(model, source: ExportSource) -> tuple[str, ...]:
    """The graph's outputs in file order, named as the Keras outputs (tf2onnx keeps dict keys)."""
    names = tuple(o.name for o in model.graph.output)
    if set(names) <= set(source.output_names):
        return names
    if len(names) == len(source.output_names) == 1:
        return source.output_names
    raise OnnxExportError(f"cannot map ONNX outputs {names} to {source.output_names}")


def write(model, path: Path, meta: ModelMeta) -> None:
    """Save with edgemask metadata in ``metadata_props`` (key ``edgemask``), sealed with the SHA-256 of
    the file's own bytes (see :mod:`edgemask.core.integrity`)."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, replace(meta, checksum=placeholder_checksum()).to_json()
    path.write_bytes(seal_onnx(model.SerializeToString()))
