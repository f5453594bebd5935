"""``edgemask-export``: convert the face detectors (YuNet from ONNX, res10 from Caffe) and the mask
classifier (Keras) to TFLite and ONNX, verify every file against its reference, and install only the
files that pass.

``edgemask-export --int8`` exports everything the runtime needs (every model, format and precision of
:mod:`edgemask.core.formats`) into ``models/``; flags narrow it down.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edgemask.argtypes import at_least, size_hw
from edgemask.assets import (
    DETECTOR_CAFFEMODEL,
    DETECTOR_PROTOTXT,
    REPO_ROOT,
    YUNET_N,
    AssetError,
    asset_roots,
    dataset,
    fetch,
)
from edgemask.core.formats import DETECTORS, FORMATS, MODELS, PRECISIONS, family_of
from edgemask.core.native_log import KEEP_ENV
from edgemask.export.caffe_proto import CaffeFormatError
from edgemask.export.calibration import DEFAULT_CLASSIFIER_DIR, DEFAULT_DETECTOR_DIR, CalibrationError
from edgemask.export.chatter import tensorflow_chatter_dropped
from edgemask.export.gate import Check
from edgemask.export.report import json_report, markdown_table
from edgemask.export.run import ExportOptions, ExportRun, Job, Paths
from edgemask.export.sources import DEFAULT_KERAS, SourceError
from edgemask.extras import missing_extra

log = logging.getLogger("edgemask.export")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgemask-export",
        description="Convert the face detectors (YuNet, res10) and the mask classifier to TFLite and ONNX,\n"
        "check every file against its reference (the source ONNX in ONNX Runtime, OpenCV's Caffe\n"
        "importer, the Keras model) and install only the files that pass. Exit status: 0 all installed;\n"
        "1 a file failed its gate (the previous file is kept); 2 bad input (nothing written).",
        epilog="examples:\n"
        "  edgemask-export --int8                      everything the runtime needs, into models/\n"
        "  edgemask-export --models yunet --formats tflite --precisions int8\n"
        "  edgemask-export --int8 --gate-images 50 --out /tmp/try   a quick trial run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to export")
    what.add_argument("--int8", action="store_true", help="also export full-integer int8 (the deployables)")
    what.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="(default: all)"
    )
    what.add_argument(
        "--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS), help="(default: all)"
    )
    what.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="precisions (default: fp32 fp16, plus int8 with --int8); ONNX has no fp16",
    )
    what.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="(default: models/)")
    what.add_argument(
        "--detector-size",
        nargs="+",
        type=size_hw,
        metavar="WxH",
        help="export the detectors at these fixed input sizes (named in file and metadata) instead of a "
        "dynamic input; also the fallback sizes if a dynamic TFLite conversion fails",
    )
    src = p.add_argument_group("sources (default: the shared assets, or a checked download)")
    src.add_argument("--yunet", type=Path, help="YuNet ONNX file (default: yunet_n_dynamic.onnx)")
    src.add_argument(
        "--yunet-masked",
        type=Path,
        default=REPO_ROOT / "models" / "face_detector_yunet_masked.keras",
        help="fine-tuned YuNet from edgemask-train detector, in the --yunet graph (default: %(default)s)",
    )
    src.add_argument("--prototxt", type=Path, help="res10 Caffe deploy.prototxt")
    src.add_argument("--caffemodel", type=Path, help="res10 Caffe weights")
    src.add_argument(
        "--classifier",
        type=Path,
        default=DEFAULT_KERAS,
        help="the Keras classifier (.keras) edgemask-train wrote (default: models/mask_classifier.keras)",
    )
    cal = p.add_argument_group("int8 calibration (real images)")
    cal.add_argument(
        "--calib-detector", type=Path, help=f"scenes for the detectors (default: {DEFAULT_DETECTOR_DIR})"
    )
    cal.add_argument(
        "--calib-classifier",
        type=Path,
        help=f"face crops for the classifier (default: {DEFAULT_CLASSIFIER_DIR})",
    )
    cal.add_argument(
        "--calib-images", type=at_least(1), default=300, help="drawn per folder (default %(default)s)"
    )
    gate = p.add_argument_group("verification gate")
    gate.add_argument(
        "--gate-scenes",
        type=Path,
        help="VOC scenes: the detectors are compared on them, the classifier on their annotated faces "
        "(default: scenes_dev)",
    )
    gate.add_argument(
        "--gate-crops", type=Path, help="labelled crops for the classifier (default: mask12k/test)"
    )
    gate.add_argument(
        "--gate-images", type=at_least(1), help="at most this many scenes and crops per set (quick runs)"
    )
    gate.add_argument(
        "--keep-failed",
        action="store_true",
        help="install a file even if it fails its gate (e.g. int8 of a small custom classifier): its "
        "metadata records the failures and edgemask-run warns when it loads it; exit status 0",
    )
    p.add_argument("--report", type=Path, help="also write the table (Markdown) there, and a .json beside it")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show TensorFlow's and the converters' own log output"
    )
    return p


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """Every (model, format, precision) asked for that the formats table has."""
    precisions = args.precisions or (["fp32", "fp16"] + (["int8"] if args.int8 else []))
    jobs = []
    for model in args.models:
        for fmt in args.formats:
            for precision in precisions:
                if precision in FORMATS[fmt].precisions:
                    jobs.append(Job(model, fmt, precision))
                elif args.precisions:
                    log.warning("%s has no %s export; skipped", FORMATS[fmt].runtime, precision)
    return jobs


def configure_logging(verbose: bool) -> None:
    """Without ``-v``: edgemask's own INFO lines, other libraries' warnings and errors only (ONNX
    Runtime's quantizer logs a line per rescaled weight at INFO), and no native TensorFlow chatter
    (:mod:`edgemask.export.chatter`)."""
    logging.basicConfig(format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("edgemask").setLevel(logging.INFO)
    if verbose:
        os.environ.setdefault(KEEP_ENV, "1")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if problem := missing_extra("export", "edgemask-export"):
        log.error("%s", problem)
        return 2
    jobs = plan_jobs(args)
    if not jobs:
        log.error("nothing to export with these flags")
        return 2
    options = ExportOptions(
        tuple(jobs),
        args.out,
        tuple(args.detector_size or ()),
        args.calib_images,
        args.gate_images,
        args.keep_failed,
    )
    try:
        with tensorflow_chatter_dropped():
            run = ExportRun.prepare(options, resolve_paths(args, jobs))
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
    return report_failures([c for c in checks if not c.passed and not c.superseded], args.out)


def report_failures(failed: list[Check], out: Path) -> int:
    """One line per file that failed its gate (installed with --keep-failed, or not), and the exit
    status; the closing line speaks of previous files only where there are some."""
    for c in failed:
        if c.kept:
            log.warning(
                "installed although it failed its gate (--keep-failed): %s (%s): %s",
                c.file,
                c.format,
                "; ".join(c.failures),
            )
        else:
            log.error("NOT installed: %s (%s): %s", c.file, c.format, "; ".join(c.failures))
    refused = [c for c in failed if not c.kept]
    if not refused:
        return 0
    previous = sorted({c.file for c in refused if (out / c.file).exists()})
    kept = f"; the previous {', '.join(previous)} in {out} left untouched" if previous else ""
    log.error("%d file(s) failed their gate and were not installed%s", len(refused), kept)
    return 1


def resolve_paths(args: argparse.Namespace, jobs: list[Job]) -> Paths:
    """Explicit paths win; otherwise the shared assets (the source weights are downloaded if absent)."""
    models = {j.model for j in jobs}
    int8 = {j.model for j in jobs if j.precision == "int8"}
    yunets = {m for m in models if family_of(m) == "yunet"}
    return Paths(
        prototxt=(args.prototxt or fetch(DETECTOR_PROTOTXT)) if "res10" in models else None,
        caffemodel=(args.caffemodel or fetch(DETECTOR_CAFFEMODEL)) if "res10" in models else None,
        yunet=(args.yunet or fetch(YUNET_N)) if yunets else None,
        yunet_masked=args.yunet_masked if "yunet_masked" in models else None,
        classifier=args.classifier if "classifier" in models else None,
        calib_detector=folder_or_default(args.calib_detector, DEFAULT_DETECTOR_DIR, "--calib-detector")
        if int8 & set(DETECTORS)
        else None,
        calib_classifier=folder_or_default(
            args.calib_classifier, DEFAULT_CLASSIFIER_DIR, "--calib-classifier"
        )
        if "classifier" in int8
        else None,
        gate_scenes=folder_or_default(args.gate_scenes, "scenes_dev", "--gate-scenes"),
        gate_crops=folder_or_default(args.gate_crops, "mask12k/test", "--gate-crops")
        if "classifier" in models
        else None,
    )


def folder_or_default(given: Path | None, default: str, flag: str) -> Path:
    """``given``, else the shared assets' ``default`` data set; its absence is reported with the flag
    that names another folder."""
    if given is not None:
        return given
    try:
        return dataset(default)
    except AssetError as e:
        searched = ", ".join(str(r) for r in asset_roots())
        raise AssetError(
            f"{flag}: no folder given, and its default datasets/{default} is not under {searched}; "
            f"pass {flag} FOLDER or set $EDGEMASK_ASSETS"
        ) from e


if __name__ == "__main__":
    sys.exit(main())
