"""``edgemask-train classifier|detector`` and ``edgemask-eval``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from edgemask.argtypes import at_least, fraction, in_range, whole_in_range
from edgemask.core.backends import BackendError
from edgemask.core.formats import DEFAULT_FORMAT
from edgemask.core.metadata import first_line
from edgemask.core.native_log import native_lines_dropped
from edgemask.extras import missing_extra, missing_modules
from edgemask.training.classifier.augment import AugmentConfig
from edgemask.training.classifier.fit import SCHEDULES, STRATEGIES, TrainConfig
from edgemask.training.classifier.scenes import INCORRECT_POLICIES
from edgemask.training.data import DataError
from edgemask.training.detector import options as detector_options
from edgemask.training.detector.checkpoint import CheckpointError
from edgemask.training.loop_options import add_loop_arguments

BACKBONE_LAYERS = 154
"""Layers of Keras's MobileNetV2 backbone: --fine-tune-from picks the first trainable one."""
MAX_INPUT_SIZE = 1024
MAX_BATCH_SIZE = 4096
TF_START_UP_LINES = ("I0000 ", "E0000 ", "WARNING: All log messages before absl::InitializeLog()")
"""TensorFlow's start-up lines, written by its C++ logger before it reads ``TF_CPP_MIN_LOG_LEVEL``."""

EXAMPLES_TRAIN = """examples:
  edgemask-train classifier --data ../shared/assets/datasets/mask12k \\
      --data ../shared/assets/datasets/rmfd_mix --scenes ../shared/assets/datasets/scenes_train \\
      --detector models/face_detector_yunet_int8.tflite \\
      --input-size 64 --out models/mask_classifier.keras --card models/README.md --force
  (the full v2 recipe, with its quantization-aware second run: models/README.md, "Reproduce v2")
  (interrupted? run the same command again: it resumes from the last finished epoch in --run-dir)
"""


def _fine_tune(value: str) -> int | None:
    """A backbone layer index, or ``none`` / ``frozen``."""
    return None if value.lower() in ("none", "frozen") else whole_in_range(0, BACKBONE_LAYERS)(value)


def add_classifier_arguments(p: argparse.ArgumentParser) -> None:
    """The classifier stage's options; each ``dest`` is a :class:`TrainConfig` (or
    :class:`AugmentConfig`) field, so :func:`config_from` builds the config."""
    d = TrainConfig(data=[])
    a = AugmentConfig()
    p.add_argument("--data", action="append", default=[], help="data folder (repeatable)")
    p.add_argument(
        "--scenes",
        action="append",
        default=[],
        help="VOC scenes folder (images/ + annotations/) to cut training crops from as the runtime cuts "
        "them: the --detector's boxes matched to the annotations, plus the annotated boxes (repeatable)",
    )
    p.add_argument(
        "--detector",
        default=None,
        help="detector file for the --scenes crops (e.g. models/face_detector_yunet_int8.tflite); its "
        "boxes are cached in --run-dir by the file's digest; without it only annotated boxes are used",
    )
    p.add_argument(
        "--incorrect-mask",
        dest="incorrect",
        choices=INCORRECT_POLICIES,
        default=d.incorrect,
        help="what mask_weared_incorrect scene faces train as (default %(default)s)",
    )
    p.add_argument(
        "--scene-val-fraction",
        type=in_range(0.01, 0.9),
        default=d.scene_val_fraction,
        help="share of --scenes scenes held out for validation (default %(default)s)",
    )
    p.add_argument(
        "--patches-per-scene",
        type=whole_in_range(0, 100),
        default=d.patches_per_scene,
        help="background patches per training scene used as occluder textures (default %(default)s)",
    )
    p.add_argument("--out", default=d.out, help="model file to write (default %(default)s)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--run-dir", default=d.run_dir, help="checkpoints and history, outside git (%(default)s)")
    p.add_argument("--cache-dir", default=d.cache_dir, help="decoded-crop cache (%(default)s)")
    p.add_argument(
        "--input-size",
        type=whole_in_range(32, MAX_INPUT_SIZE),
        default=d.input_size,
        help="square input side (default %(default)s)",
    )
    add_loop_arguments(
        p,
        epochs=d.epochs,
        batch_size=d.batch_size,
        max_batch_size=MAX_BATCH_SIZE,
        learning_rate=d.learning_rate,
    )
    p.add_argument(
        "--fine-tune-from",
        type=_fine_tune,
        default=d.fine_tune_from,
        help="first trainable backbone layer of 154, or 'none' to freeze it (default %(default)s)",
    )
    p.add_argument("--dropout", type=in_range(0.0, 0.95), default=d.dropout)
    p.add_argument(
        "--unmasked-weight",
        type=in_range(0.01, 100.0),
        default=d.unmasked_weight,
        help="extra loss weight of without_mask after class balancing; >1 trades FRR for FAR",
    )
    p.add_argument(
        "--val-fraction",
        type=in_range(0.01, 0.9),
        default=d.val_fraction,
        help="used only without val/ folders",
    )
    p.add_argument(
        "--val-low-res",
        type=at_least(2),
        nargs="*",
        default=list(d.val_low_res),
        metavar="PX",
        help="also validate on copies of the validation crops shrunk to these widths (cycled) "
        "and enlarged back, so early stopping watches small faces too",
    )
    p.add_argument(
        "--init-from", default=None, help="start from this trained .keras classifier instead of ImageNet"
    )
    p.add_argument(
        "--quant-aware",
        action="store_true",
        help="fine-tune through simulated int8 rounding (with --init-from), so the model survives "
        "full-integer export; keeps the last epoch",
    )
    p.add_argument(
        "--balance",
        action="store_true",
        help="after training, shift the unmasked output bias so max(FAR, FRR) on the validation crops is "
        "smallest (never on --eval-* data)",
    )
    p.add_argument("--seed", type=at_least(0), default=d.seed)
    p.add_argument(
        "--patience", type=at_least(1), default=d.patience, help="early-stopping patience in epochs"
    )
    p.add_argument(
        "--keep",
        choices=("best", "last"),
        default=d.keep,
        help="ship the epoch with the lowest validation loss (with early stopping), or the last "
        "epoch of a fixed schedule (default %(default)s)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help="learning-rate schedule: cut on a validation-loss plateau, or cosine decay to zero over "
        "--epochs (for fixed schedules) (default %(default)s)",
    )
    p.add_argument(
        "--ema",
        type=in_range(0.0, 0.99999),
        default=None,
        metavar="MOMENTUM",
        help="keep an exponential moving average of the weights (e.g. 0.998) and ship it",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=d.strategy,
        help="tf.distribute strategy: one device, MirroredStrategy over local devices, or "
        "MultiWorkerMirroredStrategy (cluster from $TF_CONFIG)",
    )
    p.add_argument(
        "--low-res-prob",
        type=fraction,
        default=a.low_res_prob,
        help="share of training crops degraded to a tiny size and back (default %(default)s)",
    )
    p.add_argument(
        "--occlusion-prob",
        type=fraction,
        default=a.occlusion_prob,
        help="share of bare-face crops whose mouth is covered by something that is not a mask: another "
        "crop's hair/skin, a scene background patch or a flat card (default %(default)s)",
    )
    p.add_argument(
        "--occlusion-masked-prob",
        type=fraction,
        default=a.occlusion_masked_prob,
        help="share of masked crops that get an occluder too (default %(default)s)",
    )
    p.add_argument(
        "--mask-hue-prob",
        type=fraction,
        default=a.mask_hue_prob,
        help="share of masked crops whose lower half turns a random hue (default %(default)s)",
    )
    p.add_argument(
        "--low-res-blur", type=fraction, default=a.low_res_blur, help="max 3x3 blur mix at the small size"
    )
    p.add_argument(
        "--low-res-jpeg-prob",
        type=fraction,
        default=a.low_res_jpeg_prob,
        help="share of low-res crops JPEG-compressed at the small size (default %(default)s)",
    )
    p.add_argument("--low-res-min", type=at_least(2), default=a.low_res_min)
    p.add_argument("--low-res-max", type=at_least(2), default=a.low_res_max)
    p.add_argument(
        "--zoom",
        type=in_range(0.0, 0.9),
        default=a.zoom,
        help="crop-margin jitter per axis (default %(default)s)",
    )
    p.add_argument("--eval-data", action="append", default=[], help="class folder to evaluate after training")
    p.add_argument(
        "--eval-voc", action="append", default=[], help="VOC scenes folder: evaluate on its GT crops"
    )
    p.add_argument(
        "--card", default=None, help="model card (markdown) whose '## Classifier' section to write"
    )


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgemask-train",
        description="Train one of edgemask's models: the mask classifier, or the YuNet face detector "
        "fine-tuned on VOC scenes.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="keep TensorFlow's start-up chatter")
    stages = p.add_subparsers(dest="stage", required=True, metavar="{classifier,detector}")
    classifier = stages.add_parser(
        "classifier",
        help="fine-tune MobileNetV2 into the with_mask/without_mask classifier",
        description="Fine-tune MobileNetV2 into the with_mask/without_mask classifier. Each --data folder "
        "holds with_mask/ and without_mask/, or train/ (val/, test/) splits of them; without any val/ a "
        "seeded stratified share of the training files validates.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_classifier_arguments(classifier)
    detector = stages.add_parser(
        "detector",
        help="fine-tune YuNet on VOC scenes so it finds masked faces",
        description=detector_options.DESCRIPTION,
        epilog=detector_options.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detector_options.add_arguments(detector)
    return p


def config_from(cls: type, args: argparse.Namespace) -> Any:
    """A stage's config dataclass from the parsed arguments: each field from the argument of the same
    ``dest``, nested config dataclasses from their own fields, the rest left at their defaults."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        factory = f.default_factory
        if factory is not MISSING and is_dataclass(factory):
            values[f.name] = config_from(factory, args)
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return cls(**values)


def import_tensorflow(verbose: bool, threads: int | None) -> None:
    """Import TensorFlow and Keras and start TF's runtime (with ``threads`` intra-op threads if given)
    with their start-up lines hidden unless ``verbose``: they are the same on every run and bury the
    ones that matter."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.filterwarnings("ignore", message=".*shuffle.*", category=UserWarning)
    with native_lines_dropped(lambda line: not verbose and line.startswith(TF_START_UP_LINES)):
        import keras  # noqa: F401
        import tensorflow as tf

        if threads:
            from edgemask.training.detector.fit import configure_threads

            configure_threads(threads)
        tf.constant(0.0) + 0  # device set-up logs its CUDA probe here


class DetectorChoiceError(ValueError):
    """A --detector that is no face detector edgemask can run (a classifier, a damaged file, a .keras)."""


def check_detector(choice: str | None) -> str | None:
    """The --detector file for the scene crops (a model key or a path), checked to be a face detector
    edgemask can run; raises :class:`DetectorChoiceError` with a one-line reason."""
    if choice is None:
        return None
    from edgemask.app.models import resolve_model
    from edgemask.core.detectors import load_detector

    path = resolve_model(choice, DEFAULT_FORMAT, "detector")
    try:
        load_detector(path)
    except (BackendError, OSError, ValueError) as e:
        raise DetectorChoiceError(f"--detector {choice}: {first_line(e)}") from e
    return str(path)


def train_main(argv: list[str] | None = None) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    if args.stage == "classifier":
        if not args.data and not args.scenes:
            parser.error("give at least one --data or --scenes folder")
        if args.low_res_min > args.low_res_max:
            parser.error(f"--low-res-min {args.low_res_min} is above --low-res-max {args.low_res_max}")
    if problem := missing_extra("train", "edgemask-train"):
        print(f"edgemask-train: error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import_tensorflow(args.verbose, getattr(args, "threads", None))
    run = train_classifier if args.stage == "classifier" else train_detector
    try:
        return run(args)
    except (DataError, FileExistsError, FileNotFoundError, CheckpointError, DetectorChoiceError) as e:
        print(f"edgemask-train: error: {first_line(e)}", file=sys.stderr)
        return 2


def train_classifier(args: argparse.Namespace) -> int:
    from edgemask.training.classifier.fit import train

    args.detector = check_detector(args.detector)
    result = train(config_from(TrainConfig, args))
    print(json.dumps({k: result[k] for k in ("model", "train_seconds", "epochs_run")}))
    for name, m in result["evaluations"].items():
        print(f"{name}: accuracy {m['accuracy']:.4f}  FAR {m['far']:.4f}  FRR {m['frr']:.4f}  (n = {m['n']})")
    return 0


def train_detector(args: argparse.Namespace) -> int:
    from edgemask.training.detector.fit import DetectorTrainConfig, train_detector

    result = train_detector(config_from(DetectorTrainConfig, args))
    print(json.dumps(result))
    return 0


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgemask-eval",
        description="Evaluate a mask classifier (.keras, .tflite, .onnx, or a legacy Keras-2 .h5/.model "
        "peer) on labelled crop folders (with_mask/, without_mask/) and/or on the ground-truth face crops of "
        "PASCAL VOC scenes (images/ + annotations/; mask_weared_incorrect is reported separately). Prints "
        "the confusion matrix, a classification report, accuracy, FAR and FRR.",
    )
    p.add_argument("--model", required=True, help="model file")
    p.add_argument("--data", action="append", default=[], help="class folder (repeatable)")
    p.add_argument("--voc", action="append", default=[], help="VOC scenes folder (repeatable)")
    p.add_argument(
        "--margin",
        type=in_range(0.0, 1.0),
        default=0.0,
        help="grow VOC boxes by this share per side (default 0)",
    )
    p.add_argument("--batch-size", type=whole_in_range(1, MAX_BATCH_SIZE), default=64)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--out", default=None, help="folder for confusion-matrix PNGs and metrics JSON")
    return p


def eval_needs(args: argparse.Namespace) -> str | None:
    """What the model file (and ``--out``'s plots) need that is not installed, as one line."""
    suffix = Path(args.model).suffix.lower()
    what = f"edgemask-eval on a {suffix} file"
    if suffix == ".keras":
        return missing_extra("train", what)
    if suffix in (".h5", ".model"):
        return missing_extra("peers", what)
    if args.out and missing_modules(("matplotlib",)):
        return "edgemask-eval --out draws with matplotlib, not installed here: pip install 'edgemask[train]'"
    return None


def eval_main(argv: list[str] | None = None) -> int:
    args = eval_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not args.data and not args.voc:
        print("edgemask-eval: error: give at least one --data or --voc folder", file=sys.stderr)
        return 2
    if problem := eval_needs(args):
        print(f"edgemask-eval: error: {problem}", file=sys.stderr)
        return 2
    from edgemask.evaluation.metrics import format_confusion, format_report, save_confusion_png
    from edgemask.training.evaluate import evaluate_folder, evaluate_voc, load_classifier

    try:
        clf = load_classifier(args.model)
        results: dict[str, dict] = {}
        for folder in args.data:
            results[folder] = evaluate_folder(clf, folder, args.batch_size)
        for folder in args.voc:
            results[folder] = evaluate_voc(clf, folder, args.margin, args.batch_size)
    except (DataError, FileNotFoundError, ValueError, BackendError) as e:
        print(f"edgemask-eval: error: {e}", file=sys.stderr)
        return 2
    report = {"model": args.model, "input_size": clf.input_size, "results": results}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for i, (name, m) in enumerate(results.items()):
            png = out / f"confusion_{i}_{Path(name).name}.png"
            save_confusion_png(m["confusion"], png, title=f"{Path(args.model).name} on {Path(name).name}")
            m["confusion_png"] = str(png)
        (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    for name, m in results.items():
        print(f"== {name}  ({args.model}, input {clf.input_size}px)")
        print(format_confusion(m["confusion"]))
        print()
        print(format_report(m))
        for other, o in m.get("other_classes", {}).items():
            print(f"{other}: {o['n']} faces, predicted {o['predicted']}")
        if m["skipped"]:
            print(f"skipped {m['skipped']} unreadable file(s)")
        print()
    return 0
