"""Keras -> TFLite in three precisions: fp32, fp16 (weights), and int8 with uint8 input and output, so a
device feeds raw pixels and reads quantized scores.

int8 is full-integer by default. ``float_stem=k`` keeps the first k compute ops (the full-resolution
stem) in float: MobileNetV2's stem, quantized, flips ~2.5 % of the classifier's answers on small,
upscaled faces, and a float stem brings that under 0.2 % (see :mod:`export.run`, which tries full
integer first). The model goes through a SavedModel (Keras ``export``) because converting a Keras 3
model's concrete function directly leaves its weights as variables the int8 calibrator cannot read.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from edgemask.core.integrity import tflite_checksum
from edgemask.core.metadata import ModelMeta, append_tflite_metadata
from edgemask.export.calibration import Calibration
from edgemask.export.sources import ExportSource

PRECISIONS = ("fp32", "fp16", "int8")


class ConversionError(RuntimeError):
    """The converter refused the model (unsupported op, dynamic shape it cannot handle, ...)."""


def saved_model(source: ExportSource, folder: Path) -> Path:
    """The source as a SavedModel whose ``serve`` signature takes ``image`` of ``source.input_shape``."""
    import tensorflow as tf

    path = folder / "saved_model"
    spec = tf.TensorSpec(source.input_shape, tf.float32, name="image")
    source.model.export(str(path), format="tf_saved_model", verbose=False, input_signature=[spec])
    return path


COMPUTE_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL"})


def convert(
    source: ExportSource, precision: str, calibration: Calibration | None = None, float_stem: int = 0
) -> bytes:
    """The ``.tflite`` flatbuffer (no metadata yet)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"unknown TFLite precision {precision!r}; choose from {PRECISIONS}")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 export needs calibration images")
    with tempfile.TemporaryDirectory(prefix="edgemask-tflite-") as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model(source, Path(tmp))))
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            samples = calibration.samples

            def representative():
                for x in samples:
                    yield [x]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        try:
            if float_stem:
                return quantize_with_float_stem(converter, float_stem)
            return converter.convert()
        except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError...
            raise ConversionError(f"TFLite {precision} conversion of {source.name} failed: {e}") from e


def quantize_with_float_stem(converter, float_stem: int) -> bytes:
    """Calibrate, then quantize everything but the first ``float_stem`` compute ops.

    TFLite's public converter has no per-node switch; this is the path its QuantizationDebugger takes
    (calibrate only, then the MLIR quantizer with a node denylist), so it may move with TF versions.
    """
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import convert as tflite_convert

    converter._experimental_calibrate_only = True
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    calibrated = converter.convert()
    interpreter = Interpreter(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    outputs = [
        names[op["outputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] in COMPUTE_OPS
    ]
    quantized = tflite_convert.mlir_quantize(
        calibrated, fully_quantize=True, denylisted_nodes=outputs[:float_stem]
    )
    return uint8_input(quantized)


def uint8_input(data: bytes) -> bytes:
    """Turn an int8 input that only feeds DEQUANTIZE into the equivalent uint8 input (zero point + 128).

    With a float stem the quantizer leaves an int8 input (scale 1, zero point -128 for pixels); the
    runtime and the spec want raw uint8 pixels, which DEQUANTIZE reads just as well.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(data)
    graph = model.subgraphs[0]
    (index,) = graph.inputs
    tensor = graph.tensors[index]
    readers = [op for op in graph.operators if index in op.inputs]
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    if tensor.type != schema.TensorType.INT8 or any(
        max(
            model.operatorCodes[op.opcodeIndex].builtinCode,
            model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
        )
        != dequantize
        for op in readers
    ):
        raise ConversionError("float-stem model: the input does not feed DEQUANTIZE only")
    zero = int(tensor.quantization.zeroPoint[0]) + 128
    if not 0 <= zero <= 255:
        raise ConversionError(f"float-stem model: input zero point {zero - 128} has no uint8 equivalent")
    tensor.type = schema.TensorType.UINT8
    tensor.quantization.zeroPoint = [zero]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def output_names(data: bytes, source: ExportSource) -> tuple[str, ...]:
    """Names of the flatbuffer's outputs in file order, from its ``serving_default`` signature, which
    keeps the Keras output names (YuNet's ``cls_8`` and ``obj_8`` share a shape, so shapes cannot tell)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    by_index = {
        d["index"]: name for name, d in interpreter.get_signature_runner().get_output_details().items()
    }
    names = tuple(by_index.get(d["index"], "") for d in interpreter.get_output_details())
    if sorted(names) == sorted(source.output_names):
        return names
    if len(names) == len(source.output_names) == 1:
        return source.output_names
    raise ConversionError(f"cannot map the TFLite outputs {names} to the Keras outputs {source.output_names}")


def write(data: bytes, path: Path, meta: ModelMeta) -> None:
    """Write the flatbuffer with edgemask metadata appended (see :mod:`edgemask.core.metadata`), which
    records the flatbuffer's length and SHA-256 (see :mod:`edgemask.core.integrity`)."""
    path.write_bytes(data)
    append_tflite_metadata(path, replace(meta, checksum=tflite_checksum(data)))
