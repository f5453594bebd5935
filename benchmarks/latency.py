"""Latency of edgemask's model files and of the whole pipeline on real frames, for both detector
families, against the classic recipe (cv2.dnn + Keras per face) and the AIZOO one-stage peer, in one run
on one machine.

Part 1, per model file (YuNet, res10, classifier; every variant present): ``Backend.run`` on the inputs
the runtime builds at the family's default operating point (YuNet one padded pass at long side 640, res10
the 224² and 512 px passes; ms per frame = the sum over the passes; classifier one face crop), at 1
thread and all cores; median, p90 and min, the files of one runtime interleaved round-robin (runtimes one
after the other: ONNX Runtime's worker threads spin after each run); file size; peak RSS rise while a
fresh process loads the file and runs it. Then, per model, the fastest variant at 1 thread.
Part 2, end to end: ms per frame on scenes_dev frames with several faces, every system in turn on each
frame (first place rotating), at ``--e2e-threads`` (default 1): the default pipeline (what
``edgemask-run`` runs here: the files ``--format auto --precision auto`` measures fastest, printed with
every candidate's time),
the other variants of both families, YuNet at other long sides, res10 without its small-face pass, the
classic recipe and AIZOO.
Checks: default pipeline >= 10× faster per frame than the classic recipe at 1 thread; the int8
classifier's ``MaskClassifier.infer`` within 1.2× of a bare LiteRT ``invoke`` of the same file.

Run ``python benchmarks/latency.py --help``; ``--quick`` smoke-runs it in seconds.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgemask.app import autoselect
from edgemask.app.models import candidates
from edgemask.argtypes import DefaultsHelpFormatter, at_least, network_side, side_or_off, thread_count
from edgemask.assets import REPO_ROOT, dataset
from edgemask.core.detectors import DetectorOptions
from edgemask.core.formats import AUTO, DEFAULT_DETECTOR, DEFAULT_VARIANT, DETECTORS, VARIANTS
from edgemask.evaluation import latency
from edgemask.evaluation.machine import describe, header_markdown, usable_cores
from edgemask.evaluation.report import plot_latency, write_json
from edgemask.evaluation.systems import (
    CLASSIC_NAMES,
    EdgemaskSystem,
    build_systems,
    default_system,
    edgemask_systems,
    require_peers,
)
from edgemask.evaluation.voc import load_scenes, skip_lines

VARIANT_NAMES = [v.name for v in VARIANTS]
CLASSIC = CLASSIC_NAMES["predict"]
CHOICE_HOW = "edgemask-run's --format auto --precision auto, CPU time at 1 thread"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="folder of exported models")
    p.add_argument("--formats", nargs="+", choices=VARIANT_NAMES, metavar="FMT", help=f"of {VARIANT_NAMES}")
    p.add_argument("--scenes", type=Path, help="VOC scenes folder (default: scenes_dev from the assets)")
    p.add_argument("--runs", type=at_least(1), default=100, help="timed runs per model file")
    p.add_argument("--warmup", type=at_least(0), default=5, help="untimed runs first")
    p.add_argument("--frames", type=at_least(1), default=20, help="real frames for the end-to-end part")
    p.add_argument("--min-faces", type=at_least(0), default=3, help="frames need this many annotated faces")
    p.add_argument("--reps", type=at_least(1), default=3, help="passes over the frames per system")
    p.add_argument("--threads", type=thread_count, nargs="+", help="per-model threads (default: 1, all)")
    p.add_argument("--e2e-threads", type=thread_count, default=1, help="threads for the end-to-end part")
    p.add_argument(
        "--long-sides",
        type=network_side,
        nargs="*",
        default=[320, 480, 800],
        help="extra rows: the default pipeline at these YuNet long sides",
    )
    p.add_argument(
        "--res10-small-face-sizes", type=side_or_off(), nargs="*", default=[0], help="extra res10 int8 rows"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the per-file memory probes")
    p.add_argument("--no-peers", action="store_true", help="skip the classic recipe and AIZOO (no TF)")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 runs, 2 frames, 1 rep, 1 thread")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG bar chart")
    return p


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.runs, args.warmup, args.frames, args.reps = 5, 1, 2, 1
        args.threads = args.threads or [1]
    args.threads = args.threads or sorted({1, usable_cores()})


def measured_default(models_dir: Path, notes: list[str]) -> tuple[EdgemaskSystem, list[str]]:
    """The default detector family with the files ``edgemask-run`` chooses on this machine, and the choice
    per model with every candidate's time (measured, or from edgemask-run's cache)."""
    chooser = autoselect.Chooser(
        autoselect.ChoiceCache(autoselect.default_cache_path(), notes.append), notes.append
    )
    variants = {}
    for model in (DEFAULT_DETECTOR, "classifier"):
        found = candidates(model, AUTO, AUTO, [models_dir])
        if not found:
            return default_system(), [f"{model}: no files in {models_dir}; default system as the table says"]
        chosen = chooser.choose(model, found)
        variants[model] = next(c.variant for c in found if c.path == chosen)
    system = EdgemaskSystem(
        DEFAULT_DETECTOR, variants[DEFAULT_DETECTOR], classifier_variant=variants["classifier"]
    )
    return system, [c.summary() for c in chooser.choices]


def e2e_systems(args: argparse.Namespace, default: EdgemaskSystem) -> tuple[list[EdgemaskSystem], list[str]]:
    """The default pipeline first, then every variant of each family, then the extra settings."""
    families = [DEFAULT_DETECTOR, *(d for d in DETECTORS if d != DEFAULT_DETECTOR)]
    systems, notes = edgemask_systems(args.models, families, args.formats)
    if not default.missing(args.models):
        same = default.files(args.models)
        systems = [default, *(s for s in systems if s.files(args.models) != same)]
    extras = [
        replace(default, options=DetectorOptions(size=s), setting=f"long side {s}") for s in args.long_sides
    ] + [
        replace(
            default_system("res10"),
            options=DetectorOptions(small_face_size=s),
            setting=f"small-face {s or 'off'}",
        )
        for s in args.res10_small_face_sizes
    ]
    for system in extras:
        lacking = system.missing(args.models)
        if lacking:
            notes.append(f"{system.name}: skipped, missing {', '.join(lacking)}")
        else:
            systems.append(system)
    return systems, notes


def end_to_end(
    args: argparse.Namespace, folder: Path, default: EdgemaskSystem
) -> tuple[list[dict], dict, list[str]]:
    loaded = load_scenes(folder, limit=args.frames, min_faces=args.min_faces)
    scenes = list(loaded)
    systems, notes = e2e_systems(args, default)
    notes += skip_lines(loaded.skipped)
    peers = not args.no_peers
    built = build_systems(args.models, systems, args.e2e_threads, ("predict", "call") if peers else (), peers)
    if not built or not scenes:
        return [], {}, [*notes, "end to end: no systems or no frames"]
    rows = latency.time_end_to_end(built, scenes, args.reps, CLASSIC)
    info = {
        "frames": len(scenes),
        "min_faces": args.min_faces,
        "annotated_faces_per_frame": float(np.mean([len(s.labels) for s in scenes])),
        "frame_sizes": latency.frame_sizes([s.image for s in scenes]),
        "threads": args.e2e_threads,
        "reps": args.reps,
    }
    return rows, info, notes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.no_peers:
        require_peers(parser)
    apply_quick(args)
    folder = args.scenes or dataset("scenes_dev")
    variants = [v for v in VARIANTS if not args.formats or v.name in args.formats]
    machine = describe()
    choice_notes: list[str] = []
    default_files, choices = measured_default(args.models, choice_notes)
    machine["file_choice"] = choices
    files, notes = latency.model_files(args.models, variants)
    models = latency.time_model_files(
        files, args.models, folder, args.threads, args.runs, args.warmup, memory=not args.no_memory
    )
    overhead = latency.classifier_overhead(
        DEFAULT_VARIANT.path(args.models, "classifier"), folder, args.runs, args.warmup
    )
    e2e, info, e2e_notes = end_to_end(args, folder, default_files)
    default = default_files.name
    result = {
        "machine": machine,
        "settings": vars(args),
        "notes": notes + choice_notes + e2e_notes,
        "models": models,
        "fastest": latency.fastest_lines(models),
        "classifier_overhead": overhead,
        "end_to_end": e2e,
        "end_to_end_info": info,
        "checks": latency.check_lines(e2e, overhead, default, CLASSIC, args.e2e_threads),
    }
    chosen = [f"- file choice ({CHOICE_HOW}): {c}" for c in choices]
    print("\n".join(["## Latency", "", header_markdown(machine), *chosen, "", *latency.markdown(result)]))
    if args.json_out:
        write_json(args.json_out, result)
    if args.plot:
        plot_latency(models, e2e, machine["cpu"], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
