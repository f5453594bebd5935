"""``edgemask-export``: convert the face detector (Caffe) and the mask classifier (Keras) to TFLite and
ONNX, verify every file against its reference, and install only the files that pass.

``edgemask-export --int8`` exports everything the runtime needs (fp32, fp16 and int8, both models,
both formats) into ``models/``; flags narrow it down.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edgemask import cli as edgemask_cli
from edgemask.assets import DETECTOR_CAFFEMODEL, DETECTOR_PROTOTXT, REPO_ROOT, AssetError, dataset, fetch
from export.caffe_proto import CaffeFormatError
from export.calibration import DEFAULT_CLASSIFIER_DIR, DEFAULT_DETECTOR_DIR, CalibrationError
from export.report import json_report, markdown_table
from export.run import FORMAT_NAMES, ExportRun, Job, Paths
from export.sources import SourceError

log = logging.getLogger("edgemask.export")

MODELS = ("detector", "classifier")
FORMATS = ("tflite", "onnx")
SUPPORTED = {"tflite": ("fp32", "fp16", "int8"), "onnx": ("fp32", "int8")}
DEFAULT_GATE_SIZES = ((300, 300), (480, 640))
"""The runtime's two passes: 300x300 squashed, and the small-face pass enlarged to a 640 px long side."""


def parse_size(text: str) -> tuple[int, int]:
    """``300`` or ``WxH`` (e.g. ``480x360``) -> ``(height, width)``, each at least 32 px."""
    try:
        width, height = edgemask_cli.parse_size(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use 300 or WIDTHxHEIGHT") from None
    if min(width, height) < 32:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use 300 or WIDTHxHEIGHT, each >= 32")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgemask-export",
        description="Convert the face detector (Caffe) and the mask classifier (Keras) to TFLite and ONNX,\n"
        "check every file against its reference (OpenCV's Caffe importer, the Keras model) and install\n"
        "only the files that pass. Exit status: 0 all installed; 1 a file failed its gate (the previous\n"
        "file is kept); 2 bad input (nothing written).",
        epilog="examples:\n"
        "  edgemask-export --int8                      everything the runtime needs, into models/\n"
        "  edgemask-export --models classifier --formats tflite --precisions int8\n"
        "  edgemask-export --int8 --gate-images 50 --out /tmp/try   a quick trial run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to export")
    what.add_argument("--int8", action="store_true", help="also export full-integer int8 (the deployables)")
    what.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="(default: both)")
    what.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="(default: both)")
    what.add_argument(
        "--precisions",
        nargs="+",
        choices=("fp32", "fp16", "int8"),
        help="precisions (default: fp32 fp16, plus int8 with --int8); ONNX has no fp16",
    )
    what.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="(default: models/)")
    what.add_argument(
        "--detector-size",
        nargs="+",
        type=parse_size,
        metavar="WxH",
        help="export the detector at these fixed input sizes (named in file and metadata) instead of a "
        "dynamic input; also the fallback sizes if a dynamic TFLite conversion fails (default 300x300)",
    )
    src = p.add_argument_group("sources")
    src.add_argument("--prototxt", type=Path, help="Caffe deploy.prototxt (default: edgemask.assets)")
    src.add_argument("--caffemodel", type=Path, help="Caffe weights (default: edgemask.assets, or download)")
    src.add_argument(
        "--classifier",
        type=Path,
        default=REPO_ROOT / "models" / "mask_classifier.keras",
        help="the Keras classifier edgemask-train wrote",
    )
    cal = p.add_argument_group("int8 calibration (real images)")
    cal.add_argument("--calib-detector", type=Path, help="photos for the detector (default: rmfd_mix)")
    cal.add_argument(
        "--calib-classifier", type=Path, help="face crops for the classifier (default: mask12k/train)"
    )
    cal.add_argument("--calib-images", type=int, default=300, help="drawn per folder (default 300)")
    gate = p.add_argument_group("verification gate")
    gate.add_argument("--gate-scenes", type=Path, help="VOC scenes for the detector (default: scenes_dev)")
    gate.add_argument(
        "--gate-crops", type=Path, help="labelled crops for the classifier (default: mask12k/test)"
    )
    gate.add_argument(
        "--gate-images", type=int, help="at most this many scenes and crops per set (quick runs)"
    )
    gate.add_argument(
        "--gate-sizes",
        nargs="+",
        type=parse_size,
        metavar="WxH",
        default=list(DEFAULT_GATE_SIZES),
        help="detector input sizes checked against OpenCV (default: 300x300 640x480)",
    )
    p.add_argument("--report", type=Path, help="also write the table (Markdown) there, and a .json beside it")
    p.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's own log output")
    return p


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    precisions = args.precisions or (["fp32", "fp16"] + (["int8"] if args.int8 else []))
    jobs = []
    for model in args.models:
        for fmt in args.formats:
            for precision in precisions:
                if precision in SUPPORTED[fmt]:
                    jobs.append(Job(model, fmt, precision))
                elif args.precisions:
                    log.warning("%s has no %s export; skipped", FORMAT_NAMES[fmt], precision)
    return jobs


def quiet_tensorflow(verbose: bool) -> None:
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        logging.getLogger("tf2onnx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    quiet_tensorflow(args.verbose)
    jobs = plan_jobs(args)
    if not jobs:
        log.error("nothing to export with these flags")
        return 2
    try:
        run = ExportRun.prepare(args, jobs, resolve_paths(args))
    except (CaffeFormatError, SourceError, CalibrationError, AssetError, FileNotFoundError) as e:
        log.error("%s", e)
        log.error("nothing was written to %s", args.out)
        return 2
    checks = run.execute()
    table = markdown_table(checks)
    print(table)
    if args.report:
        args.report.write_text(table + "\n")
        args.report.with_suffix(".json").write_text(json_report(checks) + "\n")
    failed = [c for c in checks if not c.passed and not c.superseded]
    for c in failed:
        log.error("NOT installed: %s (%s): %s", c.file, c.format, "; ".join(c.failures))
    if failed:
        log.error("%d files failed; the previous files in %s were left untouched", len(failed), args.out)
        return 1
    return 0


def resolve_paths(args: argparse.Namespace) -> Paths:
    """Explicit paths win; otherwise the shared assets (the caffemodel is downloaded if absent)."""
    need_detector = "detector" in args.models
    int8 = {j.model for j in plan_jobs(args) if j.precision == "int8"}
    detector_int8, classifier_int8 = "detector" in int8, "classifier" in int8
    return Paths(
        prototxt=args.prototxt or (fetch(DETECTOR_PROTOTXT) if need_detector else Path()),
        caffemodel=args.caffemodel or (fetch(DETECTOR_CAFFEMODEL) if need_detector else Path()),
        calib_detector=(args.calib_detector or dataset(DEFAULT_DETECTOR_DIR)) if detector_int8 else None,
        calib_classifier=(args.calib_classifier or dataset(DEFAULT_CLASSIFIER_DIR))
        if classifier_int8
        else None,
        gate_scenes=args.gate_scenes or dataset("scenes_dev"),
        gate_crops=args.gate_crops or dataset("mask12k/test"),
    )


if __name__ == "__main__":
    sys.exit(main())
