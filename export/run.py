"""One export run: everything that can fail on bad input is loaded first (sources, calibration images,
references), then each file is converted into a staged temporary file, gated, and installed or dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from edgemask.core.backends import BackendError
from edgemask.core.detectors import res10, yunet
from edgemask.core.formats import DETECTORS, FORMATS, MODELS, family_of, model_filename
from edgemask.core.metadata import MetadataError
from edgemask.evaluation.voc import Scene, load_scenes
from edgemask.export import onnx as onnx_export
from edgemask.export import tflite as tflite_export
from edgemask.export.calibration import (
    Calibration,
    classifier_calibration,
    detector_calibration,
    runtime_passes,
)
from edgemask.export.chatter import tensorflow_chatter_dropped
from edgemask.export.gate import CANDIDATE_SLACK, Check, DetectorGate, check_classifier
from edgemask.export.reference import (
    KerasReference,
    OpenCVReference,
    YuNetKerasReference,
    YuNetSourceReference,
    folder_crops,
    median_ms,
    scene_crops,
)
from edgemask.export.sources import (
    ExportSource,
    load_classifier,
    load_fine_tuned_yunet,
    load_res10,
    load_yunet,
)
from edgemask.export.staging import install, staged

log = logging.getLogger("edgemask.export")
EXPORTERS = {"tflite": tflite_export, "onnx": onnx_export}
FLOAT_STEM_STEPS = (0, 12)
"""int8 attempts: full integer, then the first 12 compute ops (MobileNetV2's 64x64 stage) in float."""


@dataclass(frozen=True)
class Job:
    """One file to make: which model (a key of ``MODELS``), in which format and precision."""

    model: str
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"{FORMATS[self.format].runtime} {self.precision}"


@dataclass(frozen=True)
class Paths:
    """Input files and folders, resolved (explicit flags or shared assets)."""

    prototxt: Path | None
    caffemodel: Path | None
    yunet: Path | None
    yunet_masked: Path | None
    classifier: Path | None
    calib_detector: Path | None
    calib_classifier: Path | None
    gate_scenes: Path
    gate_crops: Path | None


@dataclass(frozen=True)
class ExportOptions:
    """What ``edgemask-export`` was asked to do, below the command line."""

    jobs: tuple[Job, ...]
    out: Path
    detector_sizes: tuple[tuple[int, int], ...] = ()
    calib_images: int = 300
    gate_images: int | None = None
    keep_failed: bool = False


@dataclass
class ExportRun:
    options: ExportOptions
    paths: Paths
    sources: dict[str, list[ExportSource]] = field(default_factory=dict)
    calibration: dict[str, Calibration] = field(default_factory=dict)
    gates: dict[str, DetectorGate] = field(default_factory=dict)
    keras: KerasReference | None = None

    @classmethod
    def prepare(cls, options: ExportOptions, paths: Paths) -> ExportRun:
        """Load sources, calibration images and references; raises on any bad input, writes nothing."""
        run = cls(options, paths)
        models = {j.model for j in options.jobs}
        int8 = {j.model for j in options.jobs if j.precision == "int8"}
        limit = options.gate_images
        scenes: list[Scene] = []
        for model in (m for m in DETECTORS if m in models):
            run.sources[model] = [
                run.load_detector_source(model, s) for s in options.detector_sizes or [None]
            ]
            if model in int8:
                run.calibration[model] = detector_calibration(
                    paths.calib_detector, run.sources[model][0].meta, options.calib_images
                )
            scenes = scenes or list(load_scenes(paths.gate_scenes, limit))
            if not scenes:
                raise FileNotFoundError(f"{paths.gate_scenes}: no readable annotated scenes for the gate")
            run.gates[model] = DetectorGate(run.detector_reference(model), scenes, gate_threshold(model))
        if "classifier" in models:
            source = load_classifier(paths.classifier)
            run.sources["classifier"] = [source]
            size = source.meta.input_size[0]
            if "classifier" in int8:
                run.calibration["classifier"] = classifier_calibration(
                    paths.calib_classifier, size, options.calib_images
                )
            sets = [folder_crops(paths.gate_crops, size, limit), scene_crops(paths.gate_scenes, size, limit)]
            run.keras = KerasReference(source, sets)
        return run

    def load_detector_source(self, model: str, size: tuple[int, int] | None) -> ExportSource:
        if model == "res10":
            return load_res10(self.paths.prototxt, self.paths.caffemodel, size)
        if model == "yunet_masked":
            return load_fine_tuned_yunet(self.paths.yunet_masked, self.paths.yunet, size)
        return load_yunet(self.paths.yunet, size)

    def detector_reference(self, model: str):
        """The model's reference at the gate threshold minus the candidate slack: the source network as
        its authors run it (OpenCV's Caffe importer, ONNX Runtime), or a fine-tune's own Keras model."""
        source = self.sources[model][0]
        threshold = gate_threshold(model) - CANDIDATE_SLACK
        if model == "res10":
            return OpenCVReference(self.paths.prototxt, self.paths.caffemodel, threshold)
        if model == "yunet_masked":
            return YuNetKerasReference(source, threshold, source.meta.thresholds["nms"])
        return YuNetSourceReference(
            self.paths.yunet, threshold, source.meta.thresholds["nms"], source.meta.grid
        )

    def source_file(self, model: str) -> Path:
        """The file a detector's reference row names."""
        return {"res10": self.paths.caffemodel, "yunet_masked": self.paths.yunet_masked}.get(
            model, self.paths.yunet
        )

    def execute(self) -> list[Check]:
        checks = self.reference_rows()
        for job in tqdm(self.options.jobs, desc="exporting", unit="file"):
            for source in self.sources[job.model]:
                checks.extend(self.export_with_fallback(job, source))
        return checks

    def export_with_fallback(self, job: Job, source: ExportSource) -> list[Check]:
        """Export one file; a dynamic TFLite detector that will not convert falls back to fixed sizes."""
        try:
            return self.export(job, source)
        except tflite_export.ConversionError as e:
            dynamic = None in source.input_shape[1:3]
            if not (job.format == "tflite" and MODELS[job.model].task == "detect" and dynamic):
                return [Check(self.final_path(job, source).name, job.label, None, failures=[str(e)])]
            sizes = self.options.detector_sizes or [fallback_size(job.model)]
            log.warning("dynamic-size TFLite failed (%s); exporting at fixed sizes %s", e, sizes)
            fixed = [self.load_detector_source(job.model, s) for s in sizes]
            return [c for f in fixed for c in self.export_with_fallback(job, f)]

    def final_path(self, job: Job, source: ExportSource) -> Path:
        h, w = source.input_shape[1:3]
        fixed = (h, w) if MODELS[job.model].task == "detect" and h is not None else None
        return self.options.out / model_filename(job.model, job.format, job.precision, fixed)

    def export(self, job: Job, source: ExportSource) -> list[Check]:
        """int8 tries full integer first, then a float stem, keeping the first file that passes."""
        steps = FLOAT_STEM_STEPS if job.precision == "int8" else (0,)
        checks: list[Check] = []
        for stem in steps:
            check = self.export_once(
                job, source, stem, keep_failed=self.options.keep_failed and stem == steps[-1]
            )
            checks.append(check)
            if check.passed:
                break
            if stem != steps[-1]:
                check.superseded = True
                log.warning("%s %s failed its gate; retrying with a float stem", check.file, job.label)
        return checks

    def export_once(
        self, job: Job, source: ExportSource, float_stem: int, keep_failed: bool = False
    ) -> Check:
        """Convert, write and gate one file; install it if it passed, or if it failed and ``keep_failed``
        (rewritten first with the failures in its metadata)."""
        final = self.final_path(job, source)
        exporter = EXPORTERS[job.format]
        calibration = self.calibration.get(job.model) if job.precision == "int8" else None
        label = job.label + (f", float stem ({float_stem} ops)" if float_stem else "")
        with staged(final) as tmp:
            try:
                with tensorflow_chatter_dropped():
                    converted = exporter.convert(source, job.precision, calibration, float_stem)
                extra = (
                    {"calibration": calibration.describe(), "float_stem_ops": float_stem}
                    if calibration
                    else {}
                )
                meta = source.file_meta(job.precision, exporter.output_names(converted, source), **extra)
                exporter.write(converted, tmp, meta)
            except onnx_export.OnnxExportError as e:
                return Check(final.name, label, None, failures=[str(e)])
            try:
                check = self.gate(job, tmp)
            except (BackendError, MetadataError, ValueError) as e:  # the runtime refuses the file it just got
                return Check(final.name, label, None, failures=[f"the runtime cannot load it: {e}"])
            check.file, check.format = final.name, label
            if not check.passed and keep_failed:
                exporter.write(converted, tmp, replace(meta, failed_gate=tuple(check.failures)))
                check.kept = True
            if check.passed or check.kept:
                install(tmp, final)
            return check

    def gate(self, job: Job, path: Path) -> Check:
        if job.model in self.gates:
            return self.gates[job.model].check(path, job.label, strict=job.precision == "fp32")
        return check_classifier(path, job.label, self.keras)

    def reference_rows(self) -> list[Check]:
        """One report row per reference: what the exported files are measured against."""
        rows = []
        for model, gate in self.gates.items():
            path = self.source_file(model)
            first = self.sources[model][0]
            row = Check(path.name, gate.reference.name, path.stat().st_size)
            scene = gate.scenes[0].image
            passes = runtime_passes(first.meta, scene)
            row.ms = median_ms(run_passes, gate.reference, passes, runs=10)
            rows.append(row)
        if self.keras is not None:
            accuracy = []
            for crop_set, probs in zip(self.keras.sets, self.keras.probs, strict=True):
                labelled = crop_set.labels >= 0
                acc = float((probs.argmax(axis=1)[labelled] == crop_set.labels[labelled]).mean())
                accuracy.append(f"{crop_set.name} {acc:.2%}")
            path = self.paths.classifier
            rows.append(
                Check(path.name, "Keras (reference)", path.stat().st_size, accuracy=", ".join(accuracy))
            )
        return rows


def run_passes(reference, passes: list) -> list:
    return [reference.run_pass(p) for p in passes]


def gate_threshold(model: str) -> float:
    """The face score at which a model's files are compared with its reference (see its family's
    ``GATE_CONFIDENCE``); the passes are those of its default operating point."""
    return {res10.FAMILY: res10.GATE_CONFIDENCE, yunet.FAMILY: yunet.GATE_CONFIDENCE}[family_of(model)]


def fallback_size(model: str) -> tuple[int, int]:
    """The fixed input of a detector whose dynamic TFLite conversion failed: res10's 300², YuNet 640×480."""
    return (300, 300) if family_of(model) == res10.FAMILY else (480, 640)
