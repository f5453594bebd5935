"""One export run: everything that can fail on bad input is loaded first (sources, calibration images,
references), then each file is converted into a staged temporary file, gated, and installed or dropped.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from export import onnx as onnx_export
from export import tflite as tflite_export
from export.calibration import Calibration, classifier_calibration, detector_calibration
from export.gate import (
    CANDIDATE_SLACK,
    GATE_CONFIDENCE,
    Check,
    check_classifier,
    check_detector,
    face_recall,
    size_text,
)
from export.reference import KerasReference, OpenCVReference, folder_crops, load_scenes, scene_crops
from export.sources import ExportSource, load_classifier, load_detector
from export.staging import install, staged

log = logging.getLogger("edgemask.export")
EXPORTERS = {"tflite": tflite_export, "onnx": onnx_export}
FORMAT_NAMES = {"tflite": "TFLite", "onnx": "ONNX"}
CALIBRATION_SIZE = (300, 300)
"""The detector is calibrated at its native size (the runtime's default)."""
FLOAT_STEM_STEPS = (0, 12)
"""int8 attempts: full integer, then the first 12 compute ops (MobileNetV2's 64x64 stage) in float."""


@dataclass(frozen=True)
class Job:
    """One file to make: which model, in which format and precision."""

    model: str
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"{FORMAT_NAMES[self.format]} {self.precision}"


@dataclass(frozen=True)
class Paths:
    """Input files and folders, resolved (explicit flags or shared assets)."""

    prototxt: Path
    caffemodel: Path
    calib_detector: Path | None
    calib_classifier: Path | None
    gate_scenes: Path
    gate_crops: Path


@dataclass
class ExportRun:
    args: argparse.Namespace
    jobs: list[Job]
    paths: Paths
    detectors: list[ExportSource] = field(default_factory=list)
    classifier: ExportSource | None = None
    calibration: dict[str, Calibration] = field(default_factory=dict)
    opencv: OpenCVReference | None = None
    keras: KerasReference | None = None

    @classmethod
    def prepare(cls, args: argparse.Namespace, jobs: list[Job], paths: Paths) -> ExportRun:
        """Load sources, calibration images and references; raises on any bad input, writes nothing."""
        run = cls(args, jobs, paths)
        models = {j.model for j in jobs}
        int8 = {j.model for j in jobs if j.precision == "int8"}
        limit = args.gate_images
        if "detector" in models:
            sizes = args.detector_size or [None]
            run.detectors = [load_detector(paths.prototxt, paths.caffemodel, size) for size in sizes]
            if "detector" in int8:
                run.calibration["detector"] = detector_calibration(
                    paths.calib_detector, CALIBRATION_SIZE, args.calib_images
                )
            scenes = load_scenes(paths.gate_scenes, limit)
            threshold = GATE_CONFIDENCE - CANDIDATE_SLACK
            run.opencv = OpenCVReference(paths.prototxt, paths.caffemodel, scenes, threshold)
        if "classifier" in models:
            run.classifier = load_classifier(args.classifier)
            size = run.classifier.meta.input_size[0]
            if "classifier" in int8:
                run.calibration["classifier"] = classifier_calibration(
                    paths.calib_classifier, size, args.calib_images
                )
            sets = [folder_crops(paths.gate_crops, size, limit), scene_crops(paths.gate_scenes, size, limit)]
            run.keras = KerasReference(run.classifier, sets)
        return run

    def execute(self) -> list[Check]:
        checks = self.reference_rows()
        for job in tqdm(self.jobs, desc="exporting", unit="file"):
            sources = self.detectors if job.model == "detector" else [self.classifier]
            for source in sources:
                checks.extend(self.export_with_fallback(job, source))
        return checks

    def export_with_fallback(self, job: Job, source: ExportSource) -> list[Check]:
        """Export one file; a dynamic TFLite detector that will not convert falls back to fixed sizes."""
        try:
            return self.export(job, source)
        except tflite_export.ConversionError as e:
            dynamic = None in source.input_shape[1:3]
            if not (job.format == "tflite" and job.model == "detector" and dynamic):
                return [Check(self.final_path(job, source).name, job.label, None, failures=[str(e)])]
            sizes = self.args.detector_size or [CALIBRATION_SIZE]
            log.warning("dynamic-size TFLite failed (%s); exporting at fixed sizes %s", e, sizes)
            fixed = [load_detector(self.paths.prototxt, self.paths.caffemodel, s) for s in sizes]
            return [c for f in fixed for c in self.export_with_fallback(job, f)]

    def final_path(self, job: Job, source: ExportSource) -> Path:
        h, w = source.input_shape[1:3]
        fixed = (h, w) if job.model == "detector" and h is not None else None
        suffix = f"_{w}x{h}" if fixed else ""
        return self.args.out / f"{source.name}_{job.precision}{suffix}.{job.format}"

    def export(self, job: Job, source: ExportSource) -> list[Check]:
        """int8 tries full integer first, then a float stem, keeping the first file that passes."""
        steps = FLOAT_STEM_STEPS if job.precision == "int8" else (0,)
        checks: list[Check] = []
        for stem in steps:
            check = self.export_once(job, source, stem)
            checks.append(check)
            if check.passed:
                break
            if stem != steps[-1]:
                check.superseded = True
                log.warning("%s %s failed its gate; retrying with a float stem", check.file, job.label)
        return checks

    def export_once(self, job: Job, source: ExportSource, float_stem: int) -> Check:
        final = self.final_path(job, source)
        exporter = EXPORTERS[job.format]
        calibration = self.calibration.get(job.model) if job.precision == "int8" else None
        label = job.label + (f", float stem ({float_stem} ops)" if float_stem else "")
        with staged(final) as tmp:
            try:
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
            check = self.gate(job, tmp)
            check.file, check.format = final.name, label
            if check.passed:
                install(tmp, final)
            return check

    def gate(self, job: Job, path: Path) -> Check:
        if job.model == "detector":
            strict = job.precision == "fp32"
            sizes = list(self.args.gate_sizes)
            return check_detector(path, job.label, self.opencv, sizes, GATE_CONFIDENCE, strict)
        return check_classifier(path, job.label, self.keras)

    def reference_rows(self) -> list[Check]:
        rows = []
        if self.opencv is not None:
            sizes = list(self.args.gate_sizes)
            recall = {
                s: face_recall(self.opencv.detections(s), self.opencv.scenes, GATE_CONFIDENCE) for s in sizes
            }
            found = [f"{size_text(s)}: {r:.1%}" for s, r in recall.items()]
            rows.append(
                Check(
                    self.paths.caffemodel.name,
                    "OpenCV Caffe (reference)",
                    self.paths.caffemodel.stat().st_size,
                    accuracy="faces found " + ", ".join(found),
                    ms=self.opencv.ms_per_inference(sizes[0], runs=10),
                )
            )
        if self.keras is not None:
            accuracy = []
            for crop_set, probs in zip(self.keras.sets, self.keras.probs, strict=True):
                labelled = crop_set.labels >= 0
                acc = float((probs.argmax(axis=1)[labelled] == crop_set.labels[labelled]).mean())
                accuracy.append(f"{crop_set.name} {acc:.2%}")
            path = Path(self.args.classifier)
            size = path.stat().st_size
            rows.append(Check(path.name, "Keras (reference)", size, accuracy=", ".join(accuracy)))
        return rows
