"""End-to-end accuracy on VOC scenes (default scenes_dev) of the edgemask pipeline with each detector
family (YuNet, res10) and file variant, the classic recipe (cv2.dnn 300×300 at 0.5 + the PyImageSearch
classifier) and the AIZOO one-stage peer; each classifier alone on ground-truth crops; issue #10's targets.

Detection numbers follow edgemask.evaluation.detection_metrics (PASCAL VOC, IoU 0.5): mAP@0.5, AP per
class (``mask_weared_incorrect`` ignored), faces found overall, by width and among masked faces,
precision, FAR/FRR on the faces found; per class (mask / no mask) AP, recall, precision and faces found by
width. ``--detector-files`` scores more detector files (a fine-tuned YuNet, say) beside the committed
ones; the per-class precision-recall curves go to a PNG beside the JSON report. ``--sweep`` scores each
family's detector levers on the even and the odd half of the scenes with the pipeline's ms per frame
beside them, and names the default setting (edgemask.evaluation.sweep).

Run ``python benchmarks/accuracy.py --help``; ``--quick`` smoke-runs it on 2 scenes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgemask.argtypes import (
    DefaultsHelpFormatter,
    at_least,
    fraction,
    network_side,
    side_or_off,
    thread_count,
)
from edgemask.assets import DETECTOR_CAFFEMODEL, DETECTOR_PROTOTXT, REPO_ROOT, dataset, fetch, find
from edgemask.core.formats import DEFAULT_VARIANT, DETECTORS, VARIANTS, Variant, family_of
from edgemask.core.metadata import read_metadata
from edgemask.evaluation import accuracy, sweep
from edgemask.evaluation.machine import describe, header_markdown, usable_cores
from edgemask.evaluation.report import plot_pr, write_json
from edgemask.evaluation.systems import (
    PYIMAGESEARCH,
    build_systems,
    classifier_for,
    detector_file,
    detector_file_systems,
    edgemask_systems,
    require_peers,
)
from edgemask.evaluation.voc import Scene, load_scenes, skip_lines

VARIANT_NAMES = [v.name for v in VARIANTS]
QUICK_SCENES = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--scenes", type=Path, help="VOC scenes folder (default: scenes_dev from the assets)")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="folder of exported models")
    p.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    p.add_argument(
        "--detector-files",
        type=detector_file,
        nargs="+",
        default=[],
        metavar="PATH",
        help="more detector files to score beside the committed ones, each with the default classifier",
    )
    p.add_argument("--formats", nargs="+", choices=VARIANT_NAMES, metavar="FMT", help=f"of {VARIANT_NAMES}")
    p.add_argument("--limit", type=at_least(1), help="only the first N scenes")
    p.add_argument("--threads", type=thread_count, default=usable_cores(), help="threads for every runtime")
    p.add_argument("--no-peers", action="store_true", help="skip the classic recipe and AIZOO (no TF)")
    p.add_argument("--crop-margin", type=fraction, default=0.1, help="margin of the ground-truth crops")
    p.add_argument("--conf", type=fraction, help="face confidence (default: each file's)")
    p.add_argument(
        "--detector-size", type=network_side, help="YuNet long side / res10 squashed pass (default: file's)"
    )
    p.add_argument("--small-face-size", type=side_or_off(), help="res10's enlarged pass, off = none")
    p.add_argument("--time-every", type=at_least(1), default=4, help="time every Nth scene (all are scored)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SCENES} scenes")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--plot", type=Path, help="the precision-recall PNG (default: beside --json-out)")
    s = p.add_argument_group("sweep (each family's levers, --sweep-format files, 1 thread)")
    s.add_argument("--sweep", action="store_true", help="evaluate the grid instead of the comparison")
    s.add_argument("--sweep-format", default=DEFAULT_VARIANT.name, choices=VARIANT_NAMES)
    s.add_argument("--long-sides", type=network_side, nargs="+", default=[320, 416, 480, 512, 640, 800])
    s.add_argument("--nms-values", type=fraction, nargs="+", help="YuNet NMS IoU (default: the file's)")
    s.add_argument("--yunet-confs", type=fraction, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    s.add_argument("--input-sizes", type=network_side, nargs="+", default=[224, 300], help="res10 squashed")
    s.add_argument(
        "--small-face-sizes", type=side_or_off(), nargs="+", default=[0, 512, 640, 800], help="res10, 0 = off"
    )
    s.add_argument("--res10-confs", "--confs", type=fraction, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    s.add_argument("--margins", type=fraction, nargs="+", default=[0.1], help="face crop margin per side")
    s.add_argument(
        "--classic-ms",
        type=float,
        help="the classic recipe's ms/frame at 1 thread (default: measured in the sweep, needs the peers)",
    )
    return p


def scenes_folder(args: argparse.Namespace) -> Path:
    return args.scenes or dataset("scenes_dev")


def plot_path(args: argparse.Namespace) -> Path | None:
    """``--plot``, else ``REPORT.pr.png`` beside ``--json-out REPORT.json``."""
    if args.plot or not args.json_out:
        return args.plot
    return args.json_out.with_name(f"{args.json_out.stem}.pr.png")


def operating_points(systems: list, models_dir: Path) -> list[str]:
    """Per family, what its files say (threshold, operating point) and what was overridden."""
    lines, seen = [], set()
    for s in systems:
        if s.origin in seen:
            continue
        seen.add(s.origin)
        meta = read_metadata(s.files(models_dir)[0])
        override = f"; overridden: {s.setting}" if s.setting else ""
        lines.append(
            f"- {s.origin} files: confidence {meta.thresholds.get('confidence', '?')}, operating point "
            f"{meta.operating_point}{override}"
        )
    return lines


def run_comparison(
    args: argparse.Namespace, scenes: list[Scene], header: list[str], skips: list[str]
) -> dict:
    systems, notes = [], []
    for detector in args.detectors:
        options, setting = accuracy.family_options(
            family_of(detector), args.conf, args.detector_size, args.small_face_size
        )
        found, missing = edgemask_systems(args.models, [detector], args.formats, options, setting)
        systems += found
        notes += missing
    systems += detector_file_systems(
        args.detector_files,
        lambda family: accuracy.family_options(family, args.conf, args.detector_size, args.small_face_size),
        accuracy.DEFAULT_SYSTEM.classifier_variant,
    )
    peers = not args.no_peers
    built = build_systems(args.models, systems, args.threads, ("batch",) if peers else (), peers)
    evaluators, ms, timed = accuracy.compare(built, scenes, args.time_every)
    summaries = {name: ev.summary() for name, ev in evaluators.items()}
    classifiers = accuracy.edgemask_classifiers(args.models, [s.variant for s in systems], args.threads)
    if peers:
        classifiers["PyImageSearch MobileNetV2 (Keras)"] = accuracy.pyimagesearch_classifier(
            find(PYIMAGESEARCH), args.threads
        )
    crops = accuracy.classify_crops(classifiers, *accuracy.ground_truth_crops(scenes, args.crop_margin))
    wanted = accuracy.DEFAULT_SYSTEM.files(args.models)
    default = next((s.name for s in systems if s.files(args.models) == wanted), accuracy.DEFAULT_SYSTEM.name)
    checks = accuracy.target_lines(summaries, default)
    any_summary = next(iter(summaries.values()), None)
    out = [
        *header,
        *operating_points(systems, args.models),
        "- AP ranks detections by face score × class probability (AIZOO: its class score); IoU 0.5; "
        "mask_weared_incorrect and difficult faces ignored; FAR/FRR counted on the faces found",
        f"- ms/frame: mean over {timed} timed scenes (every {args.time_every}th), every system in turn, each "
        "timed call after an untimed one on that scene (the steady state of each frame size)",
        *(f"- note: {n}" for n in notes + skips),
        "",
        f"### End to end on {scenes_folder(args).name} ({len(scenes)} images"
        + (f", {accuracy.face_counts(any_summary)})" if any_summary else ")"),
        "",
        *accuracy.detection_table(summaries, ms, args.threads),
        "",
        "### Per class and by face width",
        "",
        "*recall and precision count each detection with the label edgemask gave it (a masked face called "
        "no_mask is a miss of mask and a false no_mask); found counts a face whatever its label; "
        "mask_weared_incorrect faces are ignored in both classes; (n): faces in the width bin*",
        "",
        *accuracy.per_class_table(summaries),
        "",
        f"### Classifiers alone on ground-truth crops (margin {args.crop_margin:g})",
        "",
        *accuracy.crops_table(crops),
        "",
        "### Issue #10 targets (default pipeline)",
        "",
        *checks,
    ]
    print("\n".join(out))
    if plot := plot_path(args):
        plot_pr(*accuracy.pr_curves(evaluators), plot, f"{scenes_folder(args).name}, {len(scenes)} scenes")
    return {
        "notes": notes,
        "detection": summaries,
        "ms_per_frame": ms,
        "timed_scenes": timed,
        "crops": crops,
        "checks": checks,
    }


def sweep_settings(args: argparse.Namespace, variant: Variant) -> tuple[list[sweep.Setting], list[str]]:
    settings, notes = [], []
    for detector in args.detectors:
        classifier = classifier_for(variant, args.models)
        files = [variant.path(args.models, detector), classifier.path(args.models, "classifier")]
        lacking = [f.name for f in files if not f.is_file()]
        if lacking:
            notes.append(f"{detector} {variant.name}: not swept, missing {', '.join(lacking)}")
        elif family_of(detector) == "yunet":
            settings += sweep.yunet_grid(args.long_sides, args.nms_values or [None], args.margins, detector)
        else:
            settings += sweep.res10_grid(args.input_sizes, args.small_face_sizes, args.margins)
    return settings, notes


def classic_timer(args: argparse.Namespace) -> dict:
    """The classic recipe at 1 thread (Keras ``predict`` per face, as the seed), if it is to be timed."""
    if args.classic_ms is not None or args.no_peers:
        return {}
    from edgemask.evaluation.peers import ClassicRecipe

    recipe = ClassicRecipe(fetch(DETECTOR_PROTOTXT), fetch(DETECTOR_CAFFEMODEL), find(PYIMAGESEARCH), 1)
    return {"classic": recipe.infer}


def paired(variant: Variant, models: Path) -> str:
    """How a sweep's title names a classifier of another variant than its detectors."""
    classifier = classifier_for(variant, models)
    return "" if classifier == variant else f" (classifier {classifier.name})"


def run_sweep(args: argparse.Namespace, scenes: list[Scene], header: list[str], skips: list[str]) -> dict:
    variant = next(v for v in VARIANTS if v.name == args.sweep_format)
    settings, notes = sweep_settings(args, variant)
    if not settings:
        raise SystemExit(f"nothing to sweep: {'; '.join(notes)}")
    confs = {"yunet": args.yunet_confs, "res10": args.res10_confs}
    lowest = {family: min(c) for family, c in confs.items()}
    runs, extra_ms = sweep.run_grid(
        settings, variant, args.models, scenes, lowest, classic_timer(args), args.time_every
    )
    timed = len(runs[0].ms)
    classic_ms = args.classic_ms
    if "classic" in extra_ms:
        classic_ms = float(np.mean(extra_ms["classic"]))
    rows = sweep.sweep_rows(runs, scenes, confs)
    lines = sweep.verdict_lines(rows, classic_ms)
    halves = {h: len(r) for h, r in sweep.half_indices(len(scenes)).items()}
    source = "given by --classic-ms" if args.classic_ms is not None else "measured in this run, interleaved"
    classic = "not known" if classic_ms is None else f"{classic_ms:.1f} ms/frame ({source})"
    out = [
        *header,
        *(f"- note: {n}" for n in notes + skips),
        f"- classic recipe (cv2.dnn + Keras predict per face, 1 thread): {classic}",
        "",
        f"### Sweep: edgemask {variant.name} pipelines{paired(variant, args.models)} on "
        f"{scenes_folder(args).name}, {len(scenes)} scenes "
        f"(even half {halves['even']}, odd half {halves['odd']}); each cell even / odd",
        "",
        *sweep.sweep_table(rows),
        "",
        f"*mean ms/frame over {timed} timed scenes (every {args.time_every}th) at 1 thread, every setting "
        "(and the classic recipe) in turn on each, each timed call after an untimed one on that scene (the "
        "steady state of each frame size, as a camera sees it); "
        "measured at the family's lowest confidence, so an upper bound for higher ones (fewer faces to "
        "classify). Higher confidences filter that run's faces afterwards, which equals running at them "
        "(NMS is greedy: a box is only suppressed by higher-scored ones).",
        "",
        *lines,
    ]
    print("\n".join(out))
    return {
        "format": variant.name,
        "notes": notes,
        "scenes": len(scenes),
        "timed_scenes": timed,
        "classic_ms": classic_ms,
        "classic_ms_source": None if classic_ms is None else source,
        "sweep": rows,
        "verdict": lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.no_peers and not (args.sweep and args.classic_ms is not None):
        require_peers(parser)
    if len({p.name for p in args.detector_files}) < len(args.detector_files):
        parser.error("--detector-files: the files need distinct names, the tables name them by it")
    if args.quick:
        args.limit = QUICK_SCENES
    loaded = load_scenes(scenes_folder(args), limit=args.limit)
    scenes = list(loaded)
    if not scenes:
        raise SystemExit(f"no readable scenes in {scenes_folder(args)}")
    machine = describe()
    header = ["## Accuracy", "", header_markdown(machine), ""]
    run = run_sweep if args.sweep else run_comparison
    result = run(args, scenes, header, skip_lines(loaded.skipped))
    result["machine"] = machine
    result["settings"] = vars(args)
    result["scene_skips"] = dict(loaded.skipped)
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
