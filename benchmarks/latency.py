"""Latency of edgemask's exported models and of the whole pipeline on real frames, against the classic
recipe (cv2.dnn + Keras per face) and the AIZOO one-stage peer, in one run on one machine.

Part 1, per model file: ``Backend.run`` on one real input (detector 300×300, classifier one face crop)
at 1 thread and at all cores; median, p90 and min over ``--runs`` after warm-up, interleaved round-robin
over the files of one runtime (runtimes one after the other: ONNX Runtime's worker threads spin after
each run and would slow whatever ran next at 2+ threads); file size; peak memory = rise of the peak
resident set size (VmHWM) while a fresh process loads the file and runs it 5 times, with both runtimes
already imported.
Part 2, end to end: ms per frame on scenes_dev frames with several faces, every system in turn on each
frame, at ``--e2e-threads`` (default 1, where no runtime keeps spinning threads); plus the int8 TFLite
pipeline with other small-face pass sizes (``--small-face-sizes``).
Checks: int8 TFLite pipeline >= 10× faster per frame than the classic recipe at 1 thread; the int8
classifier's ``MaskClassifier.infer`` within 1.2× of a bare LiteRT ``invoke`` of the same file.

Run ``python benchmarks/latency.py --help``; ``--quick`` smoke-runs it in seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from formats import DEFAULT, MODEL_STEMS, RUNTIME_NAMES, VARIANT_NAMES, Variant, available
from tqdm import tqdm

from edgemask.argtypes import at_least, side_or_off, thread_count
from edgemask.assets import REPO_ROOT
from edgemask.core.backends import load_backend, quantize
from edgemask.core.classifier import MaskClassifier
from edgemask.core.ops.boxes import clamp_box, crop, expand_box
from edgemask.core.ops.image import classifier_input
from edgemask.core.pipeline import Pipeline
from edgemask.evaluation.jsonout import write_json
from edgemask.evaluation.machine import describe, header_markdown, usable_cores
from edgemask.evaluation.scenes import iter_loaded
from edgemask.evaluation.systems import CLASSIC_NAMES, build_systems, edgemask_name
from edgemask.evaluation.timing import round_robin, stats_ms

DETECTOR_BENCH_SIZE = 300
PROBE_RUNS = 5
SPEEDUP_TARGET = 10.0
OVERHEAD_TARGET = 1.2
CLASSIC = CLASSIC_NAMES["predict"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="folder of exported models")
    p.add_argument(
        "--formats", nargs="+", choices=VARIANT_NAMES, metavar="FORMAT", help=f"only these of {VARIANT_NAMES}"
    )
    p.add_argument("--scenes", type=Path, help="VOC scenes folder (default: scenes_dev from the assets)")
    p.add_argument("--runs", type=at_least(1), default=100, help="timed runs per model file")
    p.add_argument("--warmup", type=at_least(0), default=5, help="untimed runs first")
    p.add_argument("--frames", type=at_least(1), default=20, help="real frames for the end-to-end part")
    p.add_argument(
        "--min-faces", type=at_least(0), default=3, help="frames need at least this many annotated faces"
    )
    p.add_argument("--reps", type=at_least(1), default=3, help="passes over the frames per system")
    p.add_argument(
        "--threads",
        type=thread_count,
        nargs="+",
        help="thread counts for the per-model part (default: 1 and all)",
    )
    p.add_argument("--e2e-threads", type=thread_count, default=1, help="threads for the end-to-end part")
    p.add_argument(
        "--small-face-sizes",
        type=side_or_off(),
        nargs="*",
        default=[0, 800],
        help="extra end-to-end rows: the int8 TFLite pipeline with these small-face pass sizes (0 = off)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the per-file memory probes")
    p.add_argument("--no-peers", action="store_true", help="skip the classic recipe and AIZOO (no TF)")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 runs, 2 frames, 1 rep, 1 thread")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG chart")
    p.add_argument("--probe-memory", type=Path, help=argparse.SUPPRESS)
    return p


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.runs, args.warmup, args.frames, args.reps = 5, 1, 2, 1
        args.threads = args.threads or [1]


def proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def probe_memory(path: Path, scenes: Path | None) -> None:
    """In a fresh process: reset the peak RSS, load and run the model, print the rise (MB) as JSON."""
    import ai_edge_litert.interpreter  # noqa: F401  (both runtimes count as already loaded)
    import onnxruntime  # noqa: F401

    inputs = bench_inputs(scenes)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = proc_status_mb("VmRSS")
    backend = load_backend(path, threads=1)
    x = inputs["detector" if path.name.startswith(MODEL_STEMS["detector"]) else "classifier"](backend)
    for _ in range(PROBE_RUNS):
        backend.run(x)
    print(json.dumps({"peak_rise_mb": proc_status_mb("VmHWM") - before}))


def peak_memory_mb(path: Path, scenes: Path | None) -> float | None:
    """Run :func:`probe_memory` in a subprocess; None (with a warning) if it fails."""
    cmd = [sys.executable, __file__, "--probe-memory", str(path)] + (
        ["--scenes", str(scenes)] if scenes else []
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"warning: memory probe failed for {path.name}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rise_mb"]


def sample_frame(scenes: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The first real scene with a face, and that face cropped as the pipeline crops it (margin 0.1)."""
    scene = next(iter_loaded(scenes, limit=1, min_faces=1))
    h, w = scene.image.shape[:2]
    return scene.image, crop(scene.image, clamp_box(expand_box(scene.gt_boxes[0], 0.1), w, h))


def bench_inputs(scenes: Path | None) -> dict:
    """Per model kind, a function of a backend giving its input: a real frame squashed to 300×300, or
    one real face crop at the classifier's size (both RGB uint8, as the runtime feeds them)."""
    image, face = sample_frame(scenes)
    frame = cv2.cvtColor(cv2.resize(image, (DETECTOR_BENCH_SIZE,) * 2), cv2.COLOR_BGR2RGB)[None]
    return {
        "detector": lambda backend: frame,
        "classifier": lambda backend: classifier_input(face, backend.meta.input_size[0])[None],
    }


def model_rows(args: argparse.Namespace, variants: list[Variant]) -> list[dict]:
    """Part 1: every (model, variant) at every thread count, timed round-robin."""
    inputs = bench_inputs(args.scenes)
    rows = []
    memory = {}
    if not args.no_memory:
        for v in tqdm(variants, desc="memory probes", leave=False):
            for model in MODEL_STEMS:
                memory[(model, v)] = peak_memory_mb(v.path(args.models, model), args.scenes)
    runtimes = {fmt: [v for v in variants if v.fmt == fmt] for fmt in dict.fromkeys(v.fmt for v in variants)}
    for threads, group in ((t, g) for t in args.threads for g in runtimes.values()):
        tasks, files = {}, {}
        for model in MODEL_STEMS:
            for v in group:
                path = v.path(args.models, model)
                backend = load_backend(path, threads)
                key = f"{model} {v.name}"
                tasks[key] = partial(backend.run, inputs[model](backend))
                files[key] = (model, v, path)
        print(f"timing {len(tasks)} files at {threads} thread(s), {args.runs} runs each", file=sys.stderr)
        for key, samples in round_robin(tasks, args.runs, args.warmup).items():
            model, v, path = files[key]
            rows.append(
                {
                    "model": model,
                    "format": v.name,
                    "runtime": RUNTIME_NAMES[v.fmt],
                    "threads": threads,
                    **stats_ms(samples),
                    "size_mb": path.stat().st_size / 1e6,
                    "peak_rise_mb": memory.get((model, v)),
                }
            )
    return rows


def classifier_overhead(args: argparse.Namespace) -> dict | None:
    """Median ``MaskClassifier.infer([crop])`` vs median bare LiteRT ``invoke()`` of the int8 file."""
    path = DEFAULT.path(args.models, "classifier")
    if not path.is_file():
        return None
    from ai_edge_litert.interpreter import Interpreter

    classifier = MaskClassifier(path, threads=1)
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    _, face = sample_frame(args.scenes)
    x = classifier.preprocess([face])
    scale, zero = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer):
        x = quantize(x, scale or 1.0, zero, detail["dtype"])
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"], copy=False))
    samples = round_robin(
        {"pipeline": lambda: classifier.infer([face]), "bare": interpreter.invoke}, args.runs, args.warmup
    )
    pipeline, bare = stats_ms(samples["pipeline"]), stats_ms(samples["bare"])
    return {
        "file": path.name,
        "infer_median_ms": pipeline["median"],
        "bare_invoke_median_ms": bare["median"],
        "ratio": pipeline["median"] / bare["median"],
    }


def end_to_end(args: argparse.Namespace, variants: list[Variant]) -> tuple[list[dict], dict]:
    """Part 2: every system on every frame in turn, ``reps`` passes; ms per frame."""
    scenes = list(iter_loaded(args.scenes, limit=args.frames, min_faces=args.min_faces))
    frames = [s.image for s in scenes]
    peers = not args.no_peers
    systems = build_systems(
        args.models, variants, args.e2e_threads, ("predict", "call") if peers else (), peers
    )
    if DEFAULT in variants:
        for size in args.small_face_sizes:
            pipeline = Pipeline.from_paths(
                DEFAULT.path(args.models, "detector"),
                DEFAULT.path(args.models, "classifier"),
                args.e2e_threads,
                small_face_size=size or None,
            )
            systems[f"{edgemask_name(DEFAULT)}, small-face pass {size or 'off'}"] = pipeline.infer
    samples: dict[str, list[float]] = {name: [] for name in systems}
    faces: dict[str, list[int]] = {name: [] for name in systems}
    for name, infer in systems.items():
        infer(frames[0])
        faces[name] = [len(infer(f)) for f in frames]
    for rep in tqdm(range(args.reps), desc="end to end", leave=False):
        for i, frame in enumerate(frames):
            tasks = {name: partial(infer, frame) for name, infer in systems.items()}
            for name, ms in round_robin(tasks, runs=1, warmup=0, start=rep * len(frames) + i).items():
                samples[name].extend(ms)
    baseline = np.mean(samples[CLASSIC]) if CLASSIC in samples else None
    rows = []
    for name, s in samples.items():
        st = stats_ms(s)
        rows.append(
            {
                "system": name,
                **st,
                "fps": 1000.0 / st["mean"],
                "faces_per_frame": float(np.mean(faces[name])),
                "speedup_vs_classic": baseline / st["mean"] if baseline else None,
            }
        )
    info = {
        "frames": len(frames),
        "annotated_faces_per_frame": float(np.mean([len(s.gt_labels) for s in scenes])),
        "frame_sizes": frame_sizes(frames),
        "threads": args.e2e_threads,
        "reps": args.reps,
    }
    return rows, info


def frame_sizes(frames: list[np.ndarray]) -> str:
    """``"WxH"`` when all frames share it, else how many sizes and the smallest and largest by area."""
    sizes = sorted({(f.shape[1], f.shape[0]) for f in frames}, key=lambda s: s[0] * s[1])
    named = [f"{w}x{h}" for w, h in sizes]
    return named[0] if len(named) == 1 else f"{len(named)} sizes from {named[0]} to {named[-1]}"


def checks(e2e: list[dict], overhead: dict | None, e2e_threads: int) -> list[str]:
    lines = []
    by_name = {r["system"]: r for r in e2e}
    default = by_name.get(edgemask_name(DEFAULT))
    if default and default["speedup_vs_classic"] and e2e_threads == 1:
        s = default["speedup_vs_classic"]
        verdict = "PASS" if s >= SPEEDUP_TARGET else "FAIL"
        lines.append(
            f"{verdict}: int8 TFLite pipeline {default['mean']:.1f} ms/frame vs classic recipe "
            f"{by_name[CLASSIC]['mean']:.1f} ms/frame at 1 thread: {s:.1f}x faster "
            f"(target >= {SPEEDUP_TARGET:g}x)"
        )
    else:
        lines.append(
            "NOT CHECKED: speed-up target needs the int8 TFLite files, the peers and --e2e-threads 1"
        )
    if overhead:
        verdict = "PASS" if overhead["ratio"] <= OVERHEAD_TARGET else "FAIL"
        lines.append(
            f"{verdict}: classifier int8 MaskClassifier.infer {overhead['infer_median_ms']:.2f} ms vs bare "
            f"LiteRT invoke {overhead['bare_invoke_median_ms']:.2f} ms: {overhead['ratio']:.2f}x "
            f"(target <= {OVERHEAD_TARGET:g}x)"
        )
    else:
        lines.append("NOT CHECKED: classifier overhead needs models/mask_classifier_int8.tflite")
    return lines


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    out = ["## Latency", "", header_markdown(result["machine"]), ""]
    out += [f"- note: {n}" for n in result["notes"]]
    if result["models"]:
        out += [
            "",
            f"### Per model file (`Backend.run`, median/p90/min over {result['settings']['runs']} runs)",
            "",
            "| model | format | runtime | threads | median ms | p90 ms | min ms | size MB "
            "| peak RSS rise MB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["models"]:
            out.append(
                f"| {r['model']} | {r['format']} | {r['runtime']} | {r['threads']} | {fmt(r['median'])} | "
                f"{fmt(r['p90'])} | {fmt(r['min'])} | {fmt(r['size_mb'])} | {fmt(r['peak_rise_mb'], 1)} |"
            )
    if result["end_to_end"]:
        info = result["end_to_end_info"]
        out += [
            "",
            f"### End to end ({info['frames']} scenes_dev frames, {info['frame_sizes']}, "
            f"{info['annotated_faces_per_frame']:.1f} annotated faces each, {info['reps']} passes, "
            f"{info['threads']} thread(s))",
            "",
            "| system | mean ms/frame | median | p90 | FPS | faces found/frame | speed-up vs classic |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["end_to_end"]:
            out.append(
                f"| {r['system']} | {fmt(r['mean'], 1)} | {fmt(r['median'], 1)} | {fmt(r['p90'], 1)} | "
                f"{fmt(r['fps'], 1)} | {fmt(r['faces_per_frame'], 1)} | {fmt(r['speedup_vs_classic'], 1)}x |"
            )
    out += ["", *result["checks"]]
    return "\n".join(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    ax = axes[0]
    rows = result["models"]
    labels = list(dict.fromkeys(f"{r['model']}\n{r['format']}" for r in rows))
    threads = sorted({r["threads"] for r in rows})
    width = 0.8 / max(1, len(threads))
    for i, t in enumerate(threads):
        values = {f"{r['model']}\n{r['format']}": r["median"] for r in rows if r["threads"] == t}
        ax.bar(
            np.arange(len(labels)) + i * width, [values.get(k, 0) for k in labels], width, label=f"{t} thr"
        )
    ax.set_xticks(
        np.arange(len(labels)) + width * (len(threads) - 1) / 2, labels, fontsize=7, rotation=45, ha="right"
    )
    ax.set_ylabel("median ms per run")
    ax.set_title("Per model file")
    if rows:
        ax.legend()
    ax = axes[1]
    e2e = result["end_to_end"]
    ax.barh([r["system"] for r in e2e][::-1], [r["mean"] for r in e2e][::-1], color="tab:orange")
    ax.set_xlabel(f"mean ms per frame ({result.get('end_to_end_info', {}).get('threads', '?')} thread(s))")
    ax.set_title("End to end on real frames")
    ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(result["machine"]["cpu"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.probe_memory:
        probe_memory(args.probe_memory, args.scenes)
        return 0
    apply_quick(args)
    args.threads = args.threads or sorted({1, usable_cores()})
    machine = describe()
    variants, notes = available(args.models, args.formats)
    if not variants:
        notes.append(f"no exported model pairs in {args.models}: run edgemask-export --int8")
    result = {
        "machine": machine,
        "settings": vars(args),
        "notes": notes,
        "models": model_rows(args, variants) if variants else [],
        "classifier_overhead": classifier_overhead(args),
    }
    e2e, info = end_to_end(args, variants) if variants or not args.no_peers else ([], {})
    result["end_to_end"], result["end_to_end_info"] = e2e, info
    result["checks"] = checks(e2e, result["classifier_overhead"], args.e2e_threads)
    print(markdown(result))
    if args.json_out:
        write_json(args.json_out, result)
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
