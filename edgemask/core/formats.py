"""The one table of models and file formats.

The loader picks a runtime from it, ``edgemask-export`` plans its files from it, ``edgemask-run`` finds
its default files with it, and the benchmarks and tests enumerate the variants it lists. A model file's
name says which model, precision and format it holds (``face_detector_yunet_int8.tflite``); everything
else the runtime needs is inside the file (:mod:`edgemask.core.metadata`).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    """A file format: its suffix, the runtime that runs it and the precisions the exporter writes."""

    name: str
    suffix: str
    runtime: str
    precisions: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    """One of the models edgemask ships: ``key`` names it on command lines, ``stem`` in file names;
    ``family`` is the network and decoder it belongs to (two YuNets, one decoder, one operating point);
    ``confidence`` the score threshold its files record when it is not the family's default."""

    key: str
    stem: str
    task: str
    what: str
    family: str
    confidence: float | None = None


FORMATS = {
    "tflite": Format("tflite", ".tflite", "LiteRT", ("int8", "fp16", "fp32")),
    "onnx": Format("onnx", ".onnx", "ONNX Runtime", ("int8", "fp32")),
}
"""Every exported format; the first is the one edgemask-run loads by default."""

MODELS = {
    "yunet": Model("yunet", "face_detector_yunet", "detect", "YuNet face detector (5 landmarks)", "yunet"),
    "yunet_masked": Model(
        "yunet_masked",
        "face_detector_yunet_masked",
        "detect",
        "YuNet fine-tuned on scenes_train to find masked faces (5 landmarks)",
        "yunet",
        confidence=0.3,
    ),
    "res10": Model("res10", "face_detector_res10", "detect", "OpenCV's res10 SSD face detector", "res10"),
    "classifier": Model(
        "classifier", "mask_classifier", "classify", "MobileNetV2 mask classifier", "classifier"
    ),
}
"""yunet_masked's 0.3: its ``cls`` learned the IoU, so its scores run lower than the stock file's; of
``benchmarks/accuracy.py --sweep --detectors yunet_masked --yunet-confs 0.2 … 0.5``, the threshold that
finds the most masked faces with a precision of 80 % or more on both halves of scenes_dev (README)."""
DETECTORS = tuple(key for key, m in MODELS.items() if m.task == "detect")
DEFAULT_DETECTOR = "yunet"
"""Chosen by ``benchmarks/accuracy.py --sweep`` and ``benchmarks/latency.py`` (see the README)."""
DEFAULT_FORMAT = "tflite"
DEFAULT_PRECISION = "int8"
PRECISIONS = ("int8", "fp16", "fp32")
AUTO = "auto"
"""``--precision auto``: each model's default file in the precision :func:`default_precision` names."""
FASTER_THAN_INT8 = {("x86_64", "yunet"): "fp32"}
"""Where ``benchmarks/latency.py`` measured another precision faster than int8, by CPU architecture and
model family. YuNet's small depthwise layers run faster in fp32 on x86-64 (1 thread, 640x480, medians: LiteRT
18.1 vs 23.9 ms, ONNX Runtime 14.4 vs 16.2 ms on an Intel Xeon with AVX-512 VNNI; int8 res10 was slower
than fp32 on an AMD EPYC with AVX2 only). Everything else runs int8, and so does every ARM CPU, where
XNNPACK's int8 kernels are the fast path (README, "Formats per CPU")."""


class FormatError(ValueError):
    """A file whose suffix names no format edgemask can run."""


def format_of(path: str | Path) -> Format:
    """The format of a model file, by its suffix."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    known = ", ".join(f.suffix for f in FORMATS.values())
    raise FormatError(f"{path}: unknown model format {suffix or '(no suffix)'!r}; expected {known}")


def model_filename(model: str, fmt: str, precision: str, size: tuple[int, int] | None = None) -> str:
    """``face_detector_yunet_int8.tflite``; a detector exported at a fixed ``(height, width)`` carries it:
    ``face_detector_res10_int8_300x300.tflite``."""
    fixed = f"_{size[1]}x{size[0]}" if size else ""
    return f"{MODELS[model].stem}_{precision}{fixed}{FORMATS[fmt].suffix}"


@dataclass(frozen=True)
class Variant:
    """A (format, precision) pair, e.g. ``tflite int8``: the unit the benchmarks compare."""

    format: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.format} {self.precision}"

    def path(self, models_dir: Path, model: str) -> Path:
        return models_dir / model_filename(model, self.format, self.precision)


VARIANTS = tuple(Variant(f, p) for f, fmt in FORMATS.items() for p in fmt.precisions)
"""Every exported variant; the first is the deployable default (int8 TFLite)."""
DEFAULT_VARIANT = Variant(DEFAULT_FORMAT, DEFAULT_PRECISION)


def family_of(model: str) -> str:
    """The family of a model key (``yunet_masked`` -> ``yunet``)."""
    return MODELS[model].family


def default_precision(model: str, machine: str | None = None) -> str:
    """The precision of ``model``'s default file on a CPU architecture (default: this one): its family's
    (the fine-tuned YuNet is the same network as the stock one)."""
    arch = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return FASTER_THAN_INT8.get((arch, family_of(model)), DEFAULT_PRECISION)
