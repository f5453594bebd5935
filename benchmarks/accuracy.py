"""End-to-end accuracy on VOC scenes (default scenes_dev) for every exported format of the edgemask
pipeline, the classic recipe (cv2.dnn 300×300 at 0.5 + the PyImageSearch classifier) and the AIZOO
one-stage peer; plus each classifier alone on ground-truth crops.

Detection numbers follow :mod:`edgemask.evaluation.detection_metrics` (PASCAL VOC, IoU 0.5): face recall
overall and by face width, precision, AP per class and mAP@0.5 with ``mask_weared_incorrect`` boxes
ignored, and FAR / FRR on the faces that were found. AP ranks detections by face score × class
probability (AIZOO: its class score). ``--sweep`` evaluates the detector's levers (input size, small-face
pass, confidence) on the even and the odd half of the scenes separately, so a setting is chosen only if it
wins on both.

Run ``python benchmarks/accuracy.py --help``; ``--quick`` smoke-runs it on 2 scenes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from formats import DEFAULT, VARIANT_NAMES, VARIANTS, available
from tqdm import tqdm

from edgemask.argtypes import at_least, fraction, in_range, network_side, side_or_off, thread_count
from edgemask.assets import REPO_ROOT, find
from edgemask.core.classifier import MaskClassifier
from edgemask.core.detectors.res10 import DEFAULT_SMALL_FACE_SIZE
from edgemask.core.metadata import read_metadata
from edgemask.core.pipeline import Pipeline
from edgemask.evaluation.detection_metrics import DetectionEvaluator
from edgemask.evaluation.frame_result import FrameResult
from edgemask.evaluation.jsonout import write_json
from edgemask.evaluation.machine import describe, header_markdown, usable_cores
from edgemask.evaluation.metrics import classification_metrics
from edgemask.evaluation.peers import load_pyimagesearch, pyimagesearch_input
from edgemask.evaluation.scenes import Scene, iter_loaded, scenes_folder
from edgemask.evaluation.systems import AIZOO_NAME, PYIMAGESEARCH, build_systems, edgemask_name
from edgemask.evaluation.voc import iter_face_crops, iter_scenes
from edgemask.labels import LABELS

MAP_RATIO_TARGET = 1.5
FAR_TARGET = 0.02
FRR_TARGET = 0.03
CROP_BATCH = 64


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--scenes", type=Path, help="VOC scenes folder (default: scenes_dev from the assets)")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="folder of exported models")
    p.add_argument(
        "--formats", nargs="+", choices=VARIANT_NAMES, metavar="FORMAT", help=f"only these of {VARIANT_NAMES}"
    )
    p.add_argument("--limit", type=at_least(1), help="only the first N scenes")
    p.add_argument("--threads", type=thread_count, default=usable_cores(), help="threads for every runtime")
    p.add_argument("--no-peers", action="store_true", help="skip the classic recipe and AIZOO (no TF)")
    p.add_argument(
        "--crop-margin",
        type=in_range(0.0, 1.0),
        default=0.1,
        help="margin of ground-truth crops (the pipeline's)",
    )
    p.add_argument("--conf", type=fraction, help="edgemask face confidence (default: the model's)")
    p.add_argument(
        "--small-face-size",
        type=side_or_off(),
        help=f"edgemask small-face pass size, 0 = off (default: the runtime's, {DEFAULT_SMALL_FACE_SIZE})",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 2 scenes")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--plot", type=Path, help="write the precision-recall curves as PNG")
    sweep = p.add_argument_group("sweep (detector levers, int8 TFLite unless --sweep-format)")
    sweep.add_argument("--sweep", action="store_true", help="evaluate the grid instead of the comparison")
    sweep.add_argument("--sweep-format", default=DEFAULT.name, choices=VARIANT_NAMES)
    sweep.add_argument(
        "--input-sizes", type=network_side, nargs="+", default=[224, 300], help="squashed pass sizes"
    )
    sweep.add_argument(
        "--small-face-sizes",
        type=side_or_off(),
        nargs="+",
        default=[0, 512, 640, 800],
        help="enlarged keep-aspect pass sizes; 0 = no second pass",
    )
    sweep.add_argument("--confs", type=fraction, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    sweep.add_argument(
        "--margins",
        type=in_range(0.0, 1.0),
        nargs="+",
        default=[0.1],
        help="share of the box added on each side of a face crop before classifying",
    )
    return p


def evaluate(evaluator: DetectionEvaluator, scene: Scene, result: FrameResult) -> None:
    evaluator.add(
        scene.gt_boxes, scene.gt_labels, result.boxes, result.labels, result.scores, result.face_scores
    )


def scene_count(folder: Path | None, limit: int | None) -> int:
    n = sum(1 for _ in iter_scenes(scenes_folder(folder)))
    return min(n, limit) if limit else n


def compare_systems(args: argparse.Namespace, systems: dict) -> tuple[dict, dict]:
    """Every system on every scene (one decode per scene); evaluators and mean ms per frame."""
    evaluators = {name: DetectionEvaluator() for name in systems}
    seconds = dict.fromkeys(systems, 0.0)
    scenes = iter_loaded(args.scenes, limit=args.limit)
    for i, scene in enumerate(
        tqdm(scenes, desc="scenes", unit="img", total=scene_count(args.scenes, args.limit))
    ):
        for name, infer in systems.items():
            if i == 0:
                infer(scene.image)  # warm-up: first calls build caches and graphs
            t = time.perf_counter()
            answer = infer(scene.image)
            seconds[name] += time.perf_counter() - t
            evaluate(evaluators[name], scene, FrameResult.of(answer))
    frames = max(1, evaluators[next(iter(systems))].images) if systems else 1
    return evaluators, {name: s * 1e3 / frames for name, s in seconds.items()}


def crop_classifiers(args: argparse.Namespace, variants: list) -> dict:
    """Name → ``infer(faces_bgr) -> (N, 2)`` for every exported classifier and the PyImageSearch one."""
    classifiers = {}
    for v in variants:
        model = MaskClassifier(v.path(args.models, "classifier"), threads=args.threads)
        classifiers[f"edgemask {v.name} classifier"] = model.infer
    if not args.no_peers:
        model = load_pyimagesearch(find(PYIMAGESEARCH), args.threads)

        def pyimagesearch(faces):
            return np.asarray(model(np.stack([pyimagesearch_input(f) for f in faces]), training=False))

        classifiers["PyImageSearch MobileNetV2 (Keras)"] = pyimagesearch
    return classifiers


def ground_truth_crops(args: argparse.Namespace) -> tuple[list, np.ndarray]:
    """with_mask / without_mask ground-truth crops (grown by ``--crop-margin``) and their labels."""
    faces, labels = [], []
    allowed = set([s.image_path for s in iter_scenes(scenes_folder(args.scenes))][: args.limit])
    for face in iter_face_crops(scenes_folder(args.scenes), margin=args.crop_margin, classes=LABELS):
        if face.source in allowed:
            faces.append(face.image)
            labels.append(LABELS.index(face.name))
    return faces, np.asarray(labels, dtype=np.int64)


def classify_crops(args: argparse.Namespace, classifiers: dict) -> dict:
    faces, labels = ground_truth_crops(args)
    results = {}
    for name, infer in classifiers.items():
        probs = [infer(faces[i : i + CROP_BATCH]) for i in range(0, len(faces), CROP_BATCH)]
        predicted = np.argmax(np.concatenate(probs), axis=1) if probs else np.zeros(0, dtype=np.int64)
        results[name] = classification_metrics(labels, predicted)
    return results


def target_lines(summaries: dict) -> list[str]:
    ours, peer = summaries.get(edgemask_name(DEFAULT)), summaries.get(AIZOO_NAME)
    if ours is None:
        return [f"NOT CHECKED: no {DEFAULT.name} models"]
    found = ours["found_faces"]
    lines = []
    if peer is not None:
        ratio = ours["map"] / peer["map"] if peer["map"] else float("inf")
        lines.append(
            f"{verdict(ratio >= MAP_RATIO_TARGET)}: mAP@0.5 {ours['map']:.3f} vs AIZOO {peer['map']:.3f} = "
            f"{ratio:.2f}x (target >= {MAP_RATIO_TARGET:g}x)"
        )
    else:
        lines.append("NOT CHECKED: mAP ratio needs the AIZOO peer (drop --no-peers)")
    lines.append(
        f"{verdict(found['far'] <= FAR_TARGET)}: FAR on found faces {found['far']:.2%} "
        f"(target <= {FAR_TARGET:.0%})"
    )
    lines.append(
        f"{verdict(found['frr'] <= FRR_TARGET)}: FRR on found faces {found['frr']:.2%} "
        f"(target <= {FRR_TARGET:.0%})"
    )
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.1%}"


def num(x: float, digits: int = 3) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def rate(metrics: dict, true_class: int) -> str:
    """FAR (true class 1 called 0) or FRR (true class 0 called 1) with its counts."""
    row = metrics["confusion"][true_class]
    value = metrics["far"] if true_class == 1 else metrics["frr"]
    return f"{pct(value)} ({row[1 - true_class]}/{sum(row)})"


def detection_table(summaries: dict, ms: dict, threads: int) -> list[str]:
    out = [
        f"| system | mAP@0.5 | AP mask | AP no-mask | face recall | <16 px | 16-32 px | >=32 px | precision "
        f"| FAR | FRR | found faces | ms/frame ({threads} thr) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        size = s["recall_by_size"]
        found = s["found_faces"]
        out.append(
            f"| {name} | {num(s['map'])} | {num(s['ap']['with_mask'])} | {num(s['ap']['without_mask'])} | "
            f"{pct(s['recall'])} | {pct(size['<16']['recall'])} | {pct(size['16-32']['recall'])} | "
            f"{pct(size['>=32']['recall'])} | {pct(s['precision'])} | {rate(found, 1)} | {rate(found, 0)} | "
            f"{found['n']} | {ms[name]:.1f} |"
        )
    return out


def crops_table(results: dict) -> list[str]:
    out = ["| classifier | crops | accuracy | FAR | FRR |", "|---|---:|---:|---:|---:|"]
    for name, m in results.items():
        out.append(f"| {name} | {m['n']} | {pct(m['accuracy'])} | {rate(m, 1)} | {rate(m, 0)} |")
    return out


def plot_pr(evaluators: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LABELS), figsize=(12, 5), dpi=110, sharey=True)
    for name, ev in evaluators.items():
        ap = ev.summary()["ap"]
        for ax, (label, (recall, precision)) in zip(axes, ev.pr_curves().items(), strict=True):
            ax.plot(recall, precision, label=f"{name} (AP {ap[label]:.3f})")
    for ax, label in zip(axes, LABELS, strict=True):
        ax.set_title(f"{label}: precision-recall at IoU 0.5")
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_comparison(args: argparse.Namespace, header: list[str]) -> dict:
    variants, notes = available(args.models, args.formats)
    peers = not args.no_peers
    options = {"conf_threshold": args.conf}
    if args.small_face_size is not None:
        options["small_face_size"] = args.small_face_size or None
    systems = build_systems(
        args.models, variants, args.threads, ("batch",) if peers else (), peers, **options
    )
    evaluators, ms = compare_systems(args, systems)
    summaries = {name: ev.summary() for name, ev in evaluators.items()}
    crops = classify_crops(args, crop_classifiers(args, variants))
    checks = target_lines(summaries)
    folder = scenes_folder(args.scenes)
    n_images = next(iter(summaries.values()))["images"] if summaries else 0
    small = DEFAULT_SMALL_FACE_SIZE if args.small_face_size is None else args.small_face_size or "off"
    conf = "the model's" if args.conf is None else f"{args.conf:g}"
    if args.conf is None and variants:
        meta = read_metadata(variants[0].path(args.models, "detector"))
        conf = f"{meta.thresholds['confidence']:g} (the model's)"
    out = [
        *header,
        f"- edgemask pipelines: face confidence {conf}, small-face pass {small}",
        "- AP ranks detections by face score × class probability (AIZOO: its class score); IoU 0.5; "
        "mask_weared_incorrect faces ignored",
        *(f"- note: {n}" for n in notes),
        "",
    ]
    out += [f"### End to end on {Path(folder).name} ({n_images} images)", ""]
    out += detection_table(summaries, ms, args.threads)
    out += ["", f"### Classifiers alone on ground-truth crops (margin {args.crop_margin:g})", ""]
    out += crops_table(crops)
    out += ["", *checks]
    print("\n".join(out))
    if args.plot:
        plot_pr(evaluators, args.plot)
    return {"notes": notes, "detection": summaries, "ms_per_frame": ms, "crops": crops, "checks": checks}


def sweep_runs(args: argparse.Namespace, scenes: list[Scene]) -> list[dict]:
    """One pipeline run per (input size, small-face size, crop margin) at the lowest confidence; each
    higher confidence is the same run with fewer faces (greedy NMS keeps a box only for higher-scored
    ones, so filtering afterwards equals running at that threshold)."""
    variant = next(v for v in VARIANTS if v.name == args.sweep_format)
    low = min(args.confs)
    runs = []
    grid = [(i, s, m) for i in args.input_sizes for s in args.small_face_sizes for m in args.margins]
    for input_size, small, margin in grid:
        pipeline = Pipeline.from_paths(
            variant.path(args.models, "detector"),
            variant.path(args.models, "classifier"),
            threads=args.threads,
            conf_threshold=low,
            input_size=input_size,
            small_face_size=small or None,
            margin=margin,
        )
        pipeline.infer(scenes[0].image)  # warm-up
        results, seconds = [], 0.0
        desc = f"input {input_size}, small-face {small or 'off'}, margin {margin:g}"
        for scene in tqdm(scenes, desc=desc, leave=False):
            t = time.perf_counter()
            faces = pipeline.infer(scene.image)
            seconds += time.perf_counter() - t
            results.append(FrameResult.of(faces))
        runs.append(
            {
                "input": input_size,
                "small": small,
                "margin": margin,
                "results": results,
                "ms": seconds * 1e3 / len(scenes),
            }
        )
    return runs


def above(result: FrameResult, conf: float) -> FrameResult:
    keep = result.face_scores > conf
    return FrameResult(result.boxes[keep], result.labels[keep], result.scores[keep], result.face_scores[keep])


def sweep_rows(args: argparse.Namespace, scenes: list[Scene], runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        for conf in sorted(args.confs):
            row = {
                "input": run["input"],
                "small_face_size": run["small"] or None,
                "margin": run["margin"],
                "conf": conf,
                "ms": run["ms"],
            }
            for half, parity in (("even", 0), ("odd", 1)):
                ev = DetectionEvaluator()
                for i in range(parity, len(scenes), 2):
                    evaluate(ev, scenes[i], above(run["results"][i], conf))
                s = ev.summary()
                row[half] = {
                    "map": s["map"],
                    "recall": s["recall"],
                    "recall_lt16": s["recall_by_size"]["<16"]["recall"],
                    "far": s["found_faces"]["far"],
                    "frr": s["found_faces"]["frr"],
                    "images": s["images"],
                }
            row["meets_far_frr"] = all(
                row[h]["far"] <= FAR_TARGET and row[h]["frr"] <= FRR_TARGET for h in ("even", "odd")
            )
            rows.append(row)
    return rows


def half_map(row: dict, half: str) -> float:
    return -1.0 if math.isnan(row[half]["map"]) else row[half]["map"]


def winner(pool: list[dict], label: str) -> list[str]:
    """The setting with the best mAP on each half of ``pool``; it must be the same one on both (ties go
    to the faster setting)."""
    if not pool:
        return [f"{label}: no setting qualifies"]
    tops = {h: max(half_map(r, h) for r in pool) for h in ("even", "odd")}
    both = [r for r in pool if all(half_map(r, h) == tops[h] for h in tops)]
    if both:
        return [f"{label}: {setting(min(both, key=lambda r: r['ms']))} wins both halves"]
    best = {h: min((r for r in pool if half_map(r, h) == tops[h]), key=lambda r: r["ms"]) for h in tops}
    lines = [f"{label}, {h} half: {setting(r)}" for h, r in best.items()]
    robust = max(pool, key=lambda r: min(half_map(r, "even"), half_map(r, "odd")))
    return [*lines, f"{label}: no setting wins both halves; best worst-half mAP: {setting(robust)}"]


def sweep_verdict(rows: list[dict]) -> list[str]:
    """Best mAP among all settings, and among those meeting FAR/FRR on both halves."""
    return winner(rows, "best mAP") + winner(
        [r for r in rows if r["meets_far_frr"]],
        f"best mAP with FAR <= {FAR_TARGET:.0%} and FRR <= {FRR_TARGET:.0%}",
    )


def setting(row: dict) -> str:
    return (
        f"input {row['input']}, small_face_size {row['small_face_size']}, margin {row['margin']:g}, "
        f"conf {row['conf']:g}"
    )


def sweep_table(rows: list[dict]) -> list[str]:
    out = [
        "| input | small-face pass | margin | conf | mAP even | mAP odd | recall even | recall odd "
        "| <16 px even | <16 px odd | FAR even | FAR odd | FRR even | FRR odd | ms/frame* | meets FAR/FRR |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        e, o = r["even"], r["odd"]
        out.append(
            f"| {r['input']} | {r['small_face_size'] or 'off'} | {r['margin']:g} | {r['conf']:g} | "
            f"{num(e['map'])} | "
            f"{num(o['map'])} | {pct(e['recall'])} | {pct(o['recall'])} | {pct(e['recall_lt16'])} | "
            f"{pct(o['recall_lt16'])} | {pct(e['far'])} | {pct(o['far'])} | {pct(e['frr'])} | "
            f"{pct(o['frr'])} | {r['ms']:.1f} | {'yes' if r['meets_far_frr'] else 'no'} |"
        )
    return out


def run_sweep(args: argparse.Namespace, header: list[str]) -> dict:
    variant = next(v for v in VARIANTS if v.name == args.sweep_format)
    missing = [m for m in ("detector", "classifier") if not variant.path(args.models, m).is_file()]
    if missing:
        raise SystemExit(f"sweep needs the {variant.name} {' and '.join(missing)} in {args.models}")
    scenes = list(iter_loaded(args.scenes, limit=args.limit))
    rows = sweep_rows(args, scenes, sweep_runs(args, scenes))
    lines = sweep_verdict(rows)
    out = [*header, f"### Sweep: edgemask {variant.name} on {len(scenes)} scenes, even/odd halves", ""]
    out += sweep_table(rows)
    out += [
        "",
        f"*ms/frame measured at conf {min(args.confs):g} over all scenes ({args.threads} thread(s)); "
        "higher thresholds classify fewer faces, so this is an upper bound for them.",
        "",
        *lines,
    ]
    print("\n".join(out))
    return {"sweep": rows, "verdict": lines, "format": variant.name}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.limit = 2
    machine = describe()
    header = ["## Accuracy", "", header_markdown(machine), ""]
    result = run_sweep(args, header) if args.sweep else run_comparison(args, header)
    result["machine"] = machine
    result["settings"] = vars(args)
    if args.json_out:
        write_json(args.json_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
