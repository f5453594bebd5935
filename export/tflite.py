"""Keras -> TFLite in three precisions: fp32, fp16 (weights), and full-integer int8 with uint8 input and
output, so a device feeds raw pixels and reads quantized scores without any float op in the graph.

The model goes through a SavedModel (Keras ``export``) because converting a Keras 3 model's concrete
function directly leaves its weights as variables the int8 calibrator cannot read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgemask.metadata import ModelMeta, append_tflite_metadata
from export.calibration import Calibration
from export.sources import ExportSource

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


def convert(source: ExportSource, precision: str, calibration: Calibration | None = None) -> bytes:
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
            return converter.convert()
        except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError...
            raise ConversionError(f"TFLite {precision} conversion of {source.name} failed: {e}") from e


def output_names(data: bytes, source: ExportSource) -> tuple[str, ...]:
    """Names of the flatbuffer's outputs in file order, matched to the Keras outputs by shape."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=data).get_output_details()
    keras_shapes = {
        name: tuple(-1 if d is None else d for d in shape) for name, shape in source.output_shapes().items()
    }
    names = []
    for out in details:
        shape = tuple(int(d) for d in out["shape_signature"])
        matches = [n for n, s in keras_shapes.items() if s == shape and n not in names]
        if len(matches) != 1:
            raise ConversionError(f"cannot tell which Keras output the TFLite output {shape} is: {matches}")
        names.append(matches[0])
    return tuple(names)


def write(data: bytes, path: Path, meta: ModelMeta) -> None:
    """Write the flatbuffer with edgemask metadata appended (see :mod:`edgemask.metadata`)."""
    path.write_bytes(data)
    append_tflite_metadata(path, meta)
