"""Every system the benchmarks compare, built the same way for the latency and the accuracy runs: the
edgemask pipeline per detector family and file variant (from the formats table), the classic recipe and
the AIZOO peer."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from edgemask.assets import DETECTOR_CAFFEMODEL, DETECTOR_PROTOTXT, fetch, find
from edgemask.core.detectors import DetectorOptions
from edgemask.core.formats import (
    DEFAULT_DETECTOR,
    DEFAULT_FORMAT,
    DEFAULT_VARIANT,
    DETECTORS,
    VARIANTS,
    Variant,
    default_precision,
)
from edgemask.core.metadata import MetadataError, first_line, read_metadata
from edgemask.core.pipeline import DEFAULT_MARGIN, Pipeline, PipelineOptions
from edgemask.evaluation.peers import AizooDetector, ClassicRecipe
from edgemask.extras import missing_extra

PYIMAGESEARCH = "peers/pyimagesearch_mobilenetv2/face_mask_detector.model"
AIZOO = "peers/aizoo_facemask_ssd/face_mask_detection.tflite"
CLASSIC_NAMES = {
    "predict": "classic: cv2.dnn + Keras predict per face",
    "call": "classic: cv2.dnn + Keras model(x) per face",
    "batch": "classic: cv2.dnn + Keras model(x) per frame",
}
AIZOO_NAME = "AIZOO SSD (LiteRT fp32)"


@dataclass(frozen=True)
class EdgemaskSystem:
    """The pipeline with one detector family's file of ``variant`` and the classifier of
    ``classifier_variant`` (default: the same), at the files' operating point unless ``options`` say
    otherwise (``setting`` names them in tables)."""

    detector: str
    variant: Variant
    options: DetectorOptions = field(default_factory=DetectorOptions)
    setting: str = ""
    margin: float = DEFAULT_MARGIN
    classifier_variant: Variant | None = None

    @property
    def name(self) -> str:
        mixed = self.classifier_variant not in (None, self.variant)
        classifier = f" + classifier {self.classifier_variant.name}" if mixed else ""
        return f"edgemask {self.detector} {self.variant.name}{classifier}" + (
            f", {self.setting}" if self.setting else ""
        )

    def files(self, models_dir: Path) -> tuple[Path, Path]:
        classifier = self.classifier_variant or self.variant
        return self.variant.path(models_dir, self.detector), classifier.path(models_dir, "classifier")

    def missing(self, models_dir: Path) -> list[str]:
        return [p.name for p in self.files(models_dir) if not p.is_file()]

    @property
    def origin(self) -> str:
        """What sets its operating point: the family (all committed files of a family share one)."""
        return self.detector

    def pipeline(self, models_dir: Path, threads: int) -> Pipeline:
        options = PipelineOptions(self.options, margin=self.margin, threads=threads)
        return Pipeline.from_paths(*self.files(models_dir), options)


@dataclass(frozen=True)
class DetectorFileSystem(EdgemaskSystem):
    """The pipeline with a detector file given by path (a fine-tuned YuNet, say) instead of the committed
    one, and the committed classifier of ``classifier_variant``: scored side by side with the stock files."""

    detector_file: Path = Path()

    @property
    def name(self) -> str:
        return f"edgemask {self.detector_file.name}" + (f", {self.setting}" if self.setting else "")

    @property
    def origin(self) -> str:
        return self.detector_file.name

    def files(self, models_dir: Path) -> tuple[Path, Path]:
        classifier = self.classifier_variant or DEFAULT_VARIANT
        return self.detector_file, classifier.path(models_dir, "classifier")


def detector_file(text: str) -> Path:
    """An argparse type: an existing ``.tflite``/``.onnx`` face-detector file of a family edgemask knows,
    checked from its metadata before any work starts."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    try:
        meta = read_metadata(path)
    except MetadataError as e:
        raise argparse.ArgumentTypeError(first_line(e)) from None
    if meta.task != "detect" or meta.family not in DETECTORS:
        raise argparse.ArgumentTypeError(f"{text}: not a face detector file (family {meta.family!r})")
    return path


def detector_file_systems(
    paths: Sequence[Path], options: Callable[[str], tuple[DetectorOptions, str]], classifier: Variant
) -> list[DetectorFileSystem]:
    """One system per detector file, each with ``options(family)`` (overrides and their table name) and the
    ``classifier`` variant's committed file. Tables name each by its file name."""
    systems = []
    for path in paths:
        meta = read_metadata(path)
        family_options, setting = options(meta.family)
        variant = Variant(path.suffix.lstrip("."), meta.precision)
        systems.append(
            DetectorFileSystem(
                meta.family,
                variant,
                family_options,
                setting,
                classifier_variant=classifier,
                detector_file=path,
            )
        )
    return systems


def classifier_for(variant: Variant, models_dir: Path) -> Variant:
    """The classifier variant to pair with a detector of ``variant``: the same if its file exists, else the
    default (only the int8 classifier is committed, and a detector variant should still be measured)."""
    return variant if variant.path(models_dir, "classifier").is_file() else DEFAULT_VARIANT


def default_system(family: str = DEFAULT_DETECTOR, fmt: str = DEFAULT_FORMAT) -> EdgemaskSystem:
    """``family`` as ``edgemask-run --detector FAMILY --backend FMT`` runs it on this CPU: each model's
    file in the precision ``--precision auto`` picks."""
    detector = Variant(fmt, default_precision(family))
    return EdgemaskSystem(family, detector, classifier_variant=Variant(fmt, default_precision("classifier")))


def edgemask_systems(
    models_dir: Path,
    detectors: Sequence[str] = DETECTORS,
    variant_names: Sequence[str] | None = None,
    options: DetectorOptions | None = None,
    setting: str = "",
) -> tuple[list[EdgemaskSystem], list[str]]:
    """``(systems whose files all exist, notes naming the missing files)`` for every detector family and
    variant asked for (default: all), in the formats table's order; a variant without its own classifier
    file runs with the default (int8 TFLite) classifier."""
    found, notes = [], []
    for detector in detectors:
        for v in VARIANTS:
            if variant_names and v.name not in variant_names:
                continue
            system = EdgemaskSystem(
                detector,
                v,
                options or DetectorOptions(),
                setting,
                classifier_variant=classifier_for(v, models_dir),
            )
            missing = system.missing(models_dir)
            if missing:
                notes.append(f"{system.name}: skipped, missing {', '.join(missing)}")
            else:
                found.append(system)
    return found, notes


def build_systems(
    models_dir: Path,
    systems: Sequence[EdgemaskSystem],
    threads: int,
    classic_calls: tuple[str, ...] = ("predict",),
    aizoo: bool = True,
) -> dict[str, Callable]:
    """Name → ``infer(image_bgr)``: each edgemask system, then the classic recipe once per Keras calling
    style, then AIZOO. OpenCV is held to ``threads`` for all of them."""
    cv2.setNumThreads(threads)
    built: dict[str, Callable] = {s.name: s.pipeline(models_dir, threads).infer for s in systems}
    if classic_calls:
        prototxt, caffemodel = fetch(DETECTOR_PROTOTXT), fetch(DETECTOR_CAFFEMODEL)
        keras_file = find(PYIMAGESEARCH)
        for call in classic_calls:
            built[CLASSIC_NAMES[call]] = ClassicRecipe(prototxt, caffemodel, keras_file, threads, call).infer
    if aizoo:
        built[AIZOO_NAME] = AizooDetector(find(AIZOO), threads).infer
    return built


def require_peers(parser: argparse.ArgumentParser) -> None:
    """Stop before any work, naming the extra to install, when the classic recipe's Keras-2 classifier
    cannot be loaded here (a benchmark used to fail with a traceback after minutes of timing)."""
    if line := missing_extra("peers", "the classic recipe (PyImageSearch's Keras-2 classifier)"):
        parser.error(f"{line}, or pass --no-peers")
