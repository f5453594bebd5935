"""One loader for every model file: the suffix picks the runtime (``.tflite`` → LiteRT, ``.onnx`` → ONNX
Runtime), integer models are quantized on the way in and dequantized on the way out, and the metadata the
exporter embedded comes back as :class:`~edgemask.core.metadata.ModelMeta`. Callers only see float arrays.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from edgemask.core.formats import FormatError, format_of
from edgemask.core.integrity import verify_onnx, verify_tflite
from edgemask.core.metadata import (
    DamagedModelError,
    MetadataError,
    ModelMeta,
    first_line,
    read_onnx_metadata,
    read_tflite_metadata,
)
from edgemask.core.native_log import native_info_dropped

TFLITE_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite", "Interpreter"),
)
"""LiteRT first; the old tflite-runtime and full TensorFlow only as fallbacks, with a warning."""


MAX_INTERPRETERS = 1
"""TFLite interpreters a model keeps by default, each allocated for one input shape (a caller that
alternates between shapes on every frame, such as res10's two passes, asks for more with
``keep_shapes``). A new shape takes over the least recently used interpreter, resized in place: XNNPACK
re-plans without repacking the weights (5-25 ms for a detector, well under 1 ms for a new classifier
batch size), where every interpreter kept holds 10-40 MB (benchmarks/memory.py --interpreters)."""
TFLITE_IDENTIFIER = b"TFL3"
"""Bytes 4-8 of every TFLite flatbuffer."""


class BackendError(RuntimeError):
    """A model file that cannot be loaded, or a runtime that is not installed."""


class Backend:
    """A loaded model. ``run`` takes one NHWC batch and returns the outputs as float32 arrays."""

    path: Path
    meta: ModelMeta
    name: str

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def keep_shapes(self, count: int) -> None:
        """Keep ``count`` input shapes ready at once: a caller that alternates between that many shapes
        on every frame would otherwise pay a re-plan per call. ONNX Runtime handles shapes itself."""


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Float (or raw pixel) values to the integer grid of a quantized tensor, saturating."""
    if scale == 1.0 and zero_point == 0 and x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def _tflite_interpreter_class() -> tuple[Any, str]:
    for i, (module, attr) in enumerate(TFLITE_INTERPRETERS):
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ImportError:
            continue
        if i > 0:
            warnings.warn(
                f"ai-edge-litert is not installed; using {module} (slower, older ops). "
                "Install it: pip install 'edgemask[tflite]'",
                stacklevel=3,
            )
        return cls, module
    raise BackendError("no TFLite runtime: pip install 'edgemask[tflite]' (ai-edge-litert)")


class TFLiteBackend(Backend):
    """``.tflite`` files on LiteRT, one ready interpreter per input shape."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        interpreter_cls, self.name = _tflite_interpreter_class()
        self.path = path
        self.meta = tflite_metadata(path, interpreter_cls)
        verify_tflite(path, self.meta)
        self._new_interpreter = lambda: interpreter_cls(model_path=str(path), num_threads=threads)
        self._by_shape: OrderedDict = OrderedDict()
        self.max_interpreters = MAX_INTERPRETERS
        self._spare = None
        try:
            with native_info_dropped():
                self.interpreter = self._new_interpreter()
                self._input = self.interpreter.get_input_details()[0]
                self._outputs = self.interpreter.get_output_details()
                if -1 not in self._input["shape_signature"]:
                    # A dynamic input is allocated at its first real shape: its placeholder shape (1x1
                    # pixels) is too small for the convolutions without XNNPACK.
                    self.interpreter.allocate_tensors()
                    entry = (self.interpreter, self._input, self._outputs)
                    self._by_shape[tuple(self._input["shape"])] = entry
                else:
                    self._spare = self.interpreter
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"{path}: not a loadable TFLite model ({e})") from e

    def keep_shapes(self, count: int) -> None:
        self.max_interpreters = max(self.max_interpreters, count)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The file's input shape; -1 marks a dynamic dimension."""
        return tuple(int(d) for d in self._input["shape_signature"])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        if tuple(self._input["shape"]) != x.shape or not self._by_shape:
            self._use_shape(x.shape)
        inp = self._input
        dtype = inp["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = inp["quantization"]
            x = quantize(x, scale or 1.0, zero, dtype)
        self.interpreter.set_tensor(inp["index"], x.astype(dtype, copy=False))
        self.interpreter.invoke()
        results = []
        for out in self._outputs:
            y = self.interpreter.get_tensor(out["index"])
            scale, zero = out["quantization"]
            results.append(dequantize(y, scale, zero) if scale else y.astype(np.float32))
        return results

    def _use_shape(self, shape: tuple[int, ...]) -> None:
        """Switch to the interpreter allocated for ``shape``; if none is, allocate the one made at load (the
        first time), a new one (while fewer than ``max_interpreters`` exist) or the least recently used
        one, resized."""
        entry = self._by_shape.pop(shape, None)
        if entry is None:
            if self._spare is not None:
                interpreter, self._spare = self._spare, None
            elif len(self._by_shape) < self.max_interpreters:
                with native_info_dropped():
                    interpreter = self._new_interpreter()
            else:
                interpreter = self._by_shape.popitem(last=False)[1][0]
            with native_info_dropped():
                interpreter.resize_tensor_input(
                    interpreter.get_input_details()[0]["index"], list(shape), strict=False
                )
                interpreter.allocate_tensors()
            entry = (interpreter, interpreter.get_input_details()[0], interpreter.get_output_details())
        self._by_shape[shape] = entry
        self.interpreter, self._input, self._outputs = entry


def tflite_metadata(path: Path, interpreter_cls: Any) -> ModelMeta:
    """The file's metadata; without any, says whether the file is a damaged model (the flatbuffer fails
    the runtime's verifier) or a TFLite model edgemask did not export."""
    try:
        return read_tflite_metadata(path)
    except DamagedModelError:
        raise
    except MetadataError as e:
        with open(path, "rb") as f:
            head = f.read(8)
        if head[4:8] != TFLITE_IDENTIFIER:
            raise BackendError(f"{path}: not a TFLite model (no TFLite flatbuffer header)") from e
        try:
            with native_info_dropped():
                interpreter_cls(model_path=str(path))
        except (ValueError, RuntimeError) as load_error:
            raise DamagedModelError(path, f"not a valid flatbuffer: {first_line(load_error)}") from e
        raise


class OnnxBackend(Backend):
    """``.onnx`` files on ONNX Runtime's CPU provider."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError("ONNX Runtime is not installed: pip install 'edgemask[onnx]'") from e
        self.name = "onnxruntime"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        data = path.read_bytes()
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own exception types
            raise DamagedModelError(
                path, f"ONNX Runtime cannot read it, or it is not ONNX: {first_line(e)}"
            ) from e
        self.path = path
        self.meta = read_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        verify_onnx(path, data, self.meta)
        self._input = self.session.get_inputs()[0]
        self._dtype = np.uint8 if self._input.type == "tensor(uint8)" else np.float32

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._input.shape)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.session.run(None, {self._input.name: x.astype(self._dtype, copy=False)})
        return [np.asarray(y, dtype=np.float32) for y in outputs]


BACKENDS: dict[str, type[Backend]] = {"tflite": TFLiteBackend, "onnx": OnnxBackend}
"""The runtime class of each format of :data:`edgemask.core.formats.FORMATS`."""


class FailedGateWarning(UserWarning):
    """A model file installed although it failed its export gate (``edgemask-export --keep-failed``)."""


_warned_failed_gate: set[Path] = set()


def load_backend(path: str | os.PathLike, threads: int = 1) -> Backend:
    """Load a model file exported by ``edgemask-export``; the formats table picks the runtime."""
    path = Path(path)
    try:
        fmt = format_of(path)
    except FormatError as e:
        raise BackendError(str(e)) from e
    if not path.is_file():
        raise BackendError(f"{path}: model file not found (run edgemask-export or pass the model path)")
    backend = BACKENDS[fmt.name](path, threads=max(1, int(threads)))
    warn_failed_gate(backend)
    return backend


def warn_failed_gate(backend: Backend) -> None:
    """Once per file and process: say that ``backend``'s file failed its gate and why."""
    failures = backend.meta.failed_gate
    if failures and backend.path.resolve() not in _warned_failed_gate:
        _warned_failed_gate.add(backend.path.resolve())
        warnings.warn(
            f"{backend.path}: installed with edgemask-export --keep-failed although it failed its "
            f"verification gate ({'; '.join(failures)})",
            FailedGateWarning,
            stacklevel=3,
        )
