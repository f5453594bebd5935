"""Throughput of ``--sort-into``: the local engine (one thread) against Ray Data with 1 and 2 workers, on the
same images (default: the first 400 of scenes_dev), start-up measured apart.

Each arm runs in a fresh process, one after the other, into an empty output folder of its own: the local
engine through the frame loop and its sort sink, Ray through the engine's own pieces (a local cluster of
N CPUs, the Ray Data pipeline, the driver filing every outcome). An arm's start-up is the time from its
start to its first filed image (models loaded; for Ray also the cluster, whose share is shown apart, and
its workers loading the models); its speed is the images after the first over the time after the first,
so start-up stays out of it. Under Ray the driver files (encodes and writes) while a worker computes: with
1 worker the job still uses two processes.
Targets: Ray with 2 workers >= 1.6x the local engine's images per second; Ray with 1 worker at most 10 %
more time per image than the local engine; the three output folders identical (rows and crop bytes).
Last, for the scaling model, the milliseconds of each step of one image (read, hash, decode, detect,
classify, the pipeline's rest, crop, write) and where it runs under Ray, one image at a time.

``python benchmarks/distributed.py --help``; ``--quick`` runs 20 images. Run it on a quiet machine: the
figures are only comparable side by side within one run. On a busy one, ``--repeat N`` interleaves N
rounds of the arms and keeps each arm's fastest, so that a burst of other work spoils one round, not the
comparison.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from tqdm import tqdm

from edgemask import assets
from edgemask.app.cli import build_parser as cli_parser
from edgemask.app.cli import load_pipeline
from edgemask.app.runner import Console, RunStats, StopRequest, process
from edgemask.app.sinks import BaseSink, Processed
from edgemask.app.sorting.cluster import ray_cluster, ray_output_aside
from edgemask.app.sorting.crops import crop_rows
from edgemask.app.sorting.local import SortSink
from edgemask.app.sorting.manifest import MANIFEST, SortFolder
from edgemask.app.sorting.ray_engine import PipelineCounts, RayRun, plan, stream_outcomes
from edgemask.app.sorting.ray_engine import file_outcomes as file_ray_outcomes
from edgemask.app.sources import ImageFiles, decode, list_files
from edgemask.argtypes import DefaultsHelpFormatter, at_least
from edgemask.evaluation.machine import describe, header_markdown
from edgemask.evaluation.report import table, verdict, write_json

SPEEDUP_TARGET = 1.6
OVERHEAD_TARGET = 0.10
ARMS = (("local engine, 1 thread", "local", 1), ("Ray, 1 worker", "ray", 1), ("Ray, 2 workers", "ray", 2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--source", type=Path, help="images to sort (default: scenes_dev/images)")
    p.add_argument("--images", type=at_least(2), default=400, help="the first N images of the source")
    p.add_argument("--quick", action="store_true", help="20 images")
    p.add_argument(
        "--repeat",
        type=at_least(1),
        default=1,
        help="rounds of the arms, interleaved; each arm's fastest round counts, each step's cheapest "
        "(other work on the machine only ever slows a round down)",
    )
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--arm", choices=("local", "ray", "stages"), help=argparse.SUPPRESS)
    p.add_argument("--workers", type=at_least(1), default=1, help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p


def pipeline_args(folder: Path, out: Path) -> argparse.Namespace:
    """edgemask-run's defaults for a one-thread sort of ``folder`` into ``out``."""
    return cli_parser().parse_args(["--source", str(folder), "--sort-into", str(out), "--threads", "1"])


class Arrivals(BaseSink):
    """When each image was filed (the sink after the sort sink)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, item: Processed) -> None:
        self.times.append(time.perf_counter())


def local_arm(folder: Path, out: Path) -> list[float]:
    """The local engine as edgemask-run runs it; the filing times."""
    pipeline = load_pipeline(pipeline_args(folder, out))
    sort_folder = SortFolder(out)
    source = ImageFiles(list_files(folder), folder, sort_folder.is_done)
    arrivals = Arrivals()
    process(source, pipeline, [SortSink(sort_folder, pipeline.margin), arrivals], Console(True), RunStats())
    sort_folder.close()
    return arrivals.times


def ray_arm(folder: Path, out: Path, workers: int) -> tuple[list[float], float]:
    """The Ray engine on a local cluster of ``workers`` CPUs; the filing times, and the seconds the
    cluster took to start (the rest of the start-up is the workers loading the models)."""
    args = pipeline_args(folder, out)
    margin = load_pipeline(args).margin
    run = RayRun(partial(load_pipeline, args), margin, workers)
    sort_folder = SortFolder(out)
    source = ImageFiles(list_files(folder), folder)
    work = plan(source, sort_folder)
    times: list[float] = []

    def timed(outcomes: Iterator) -> Iterator:
        """Each image's filing time, as the local arm's: taken when the driver asks for the next outcome,
        so after it filed this one; skip records are not images filed."""
        for outcome in outcomes:
            yield outcome
            if outcome.image is not None:
                times.append(time.perf_counter())

    with ray_output_aside(False), ray_cluster(None, workers, False) as cluster:
        outcomes = timed(stream_outcomes(work.to_read, source.root, sort_folder, run, workers))
        stats, counts = RunStats(), PipelineCounts(margin)
        with tqdm(disable=True) as bar:
            file_ray_outcomes(
                outcomes, work.names, sort_folder, Console(True), stats, counts, bar, StopRequest()
            )
    sort_folder.close()
    return times, cluster.startup_s


STAGES = ("read", "hash", "decode", "detect", "classify", "pipeline, rest", "crop", "write")


def stage_costs(folder: Path, out: Path) -> dict[str, float]:
    """Milliseconds per image of each step of the sort, one image at a time in one thread, for the scaling
    model: read the bytes, hash them, decode, detect, classify, the pipeline's glue around the two models
    (resizing, crops for the classifier), cut the crops, write crops and rows. The first image (warm-up)
    is left out, as in the arms' speed."""
    pipeline = load_pipeline(pipeline_args(folder, out))
    sort_folder = SortFolder(out)
    totals = dict.fromkeys(STAGES, 0.0)
    paths = list_files(folder)
    for index, path in enumerate(paths):
        t0 = time.perf_counter()
        data = path.read_bytes()
        t1 = time.perf_counter()
        digest = hashlib.sha256(data).hexdigest()
        t2 = time.perf_counter()
        image, _ = decode(data, path)
        t3 = time.perf_counter()
        result = pipeline.infer(image)
        t4 = time.perf_counter()
        cut = crop_rows(str(path.absolute()), path.name, digest, image, result.faces, pipeline.margin)
        t5 = time.perf_counter()
        sort_folder.record(cut)
        t6 = time.perf_counter()
        if index == 0:
            continue
        timings = result.timings
        steps = {
            "read": (t1 - t0) * 1e3,
            "hash": (t2 - t1) * 1e3,
            "decode": (t3 - t2) * 1e3,
            "detect": timings.detect,
            "classify": timings.classify,
            "pipeline, rest": max(0.0, (t4 - t3) * 1e3 - timings.detect - timings.classify),
            "crop": (t5 - t4) * 1e3,
            "write": (t6 - t5) * 1e3,
        }
        for stage, ms in steps.items():
            totals[stage] += ms
    sort_folder.close()
    return {stage: ms / (len(paths) - 1) for stage, ms in totals.items()}


def child(args: argparse.Namespace) -> int:
    """One arm in this fresh process: prints its start-up and speed as JSON."""
    started = time.perf_counter()
    if args.arm == "stages":
        print(json.dumps(stage_costs(args.folder, args.out)))
        return 0
    if args.arm == "local":
        times, cluster_s = local_arm(args.folder, args.out), 0.0
    else:
        times, cluster_s = ray_arm(args.folder, args.out, args.workers)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    record = {"images": len(times), "startup_s": times[0] - started, "cluster_s": cluster_s}
    print(json.dumps({**record, "images_per_s": steady}))
    return 0


def run_arm(kind: str, workers: int, folder: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--arm", kind, "--workers", str(workers), "--folder", str(folder)]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} arm failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fingerprint(out: Path) -> tuple[list[list[str]], dict[str, str]]:
    """An output folder's manifest rows (sorted) and its crops' digests, to compare arms by."""
    with open(out / MANIFEST, newline="", encoding="utf-8") as f:
        rows = sorted(csv.reader(f))
    crops = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.jpg")
    }
    return rows, crops


def report(info: dict, images: int, repeat: int, results: dict[str, dict], identical: bool) -> list[str]:
    local, one, two = (results[label] for label, _, _ in ARMS)
    speedup = two["images_per_s"] / local["images_per_s"]
    overhead = local["images_per_s"] / one["images_per_s"] - 1
    rows = [
        [
            label,
            f"{r['images']}",
            f"{r['startup_s']:.1f}",
            f"{r['cluster_s']:.1f}",
            f"{r['images_per_s']:.2f}",
            f"{1e3 / r['images_per_s']:.0f}",
        ]
        for label, r in results.items()
    ]
    return [
        header_markdown(info),
        "",
        f"--sort-into on {images} images (scenes_dev), each arm a fresh process into an empty folder; "
        f"the best of {repeat} interleaved round{'s' if repeat != 1 else ''}",
        "",
        *table(
            [
                "engine",
                "images",
                "start-up s",
                "of it the cluster s",
                "images/s after the first",
                "ms per image",
            ],
            rows,
        ),
        "",
        f"{verdict(speedup >= SPEEDUP_TARGET)} Ray with 2 workers: {speedup:.2f}x the local engine's "
        f"throughput (target >= {SPEEDUP_TARGET}x)",
        f"{verdict(overhead <= OVERHEAD_TARGET)} Ray with 1 worker: {overhead:+.1%} time per image against "
        f"the local engine (target <= +{OVERHEAD_TARGET:.0%})",
        f"{verdict(identical)} every output folder is identical (manifest rows and crop bytes)",
    ]


RUNS_ON = {"read": "Ray read task", "write": "driver (the one writer)"}
"""Where each step runs under --engine ray; every other step runs in a worker."""


def stage_table(stages: dict[str, float]) -> list[str]:
    total = sum(stages.values())
    rows = [
        [stage, RUNS_ON.get(stage, "worker"), f"{ms:.2f}", f"{ms / total:.0%}"]
        for stage, ms in stages.items()
    ]
    return [
        "Where an image's time goes (one thread, one at a time; write: crops JPEG-encoded, rows fsynced)",
        "",
        *table(["step", "runs on", "ms per image", "share"], [*rows, ["total", "", f"{total:.1f}", "100%"]]),
    ]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.arm:
        return child(args)
    count = 20 if args.quick else args.images
    source = args.source or assets.dataset("scenes_dev") / "images"
    info = describe()
    with tempfile.TemporaryDirectory(prefix="edgemask-distributed-") as tmp:
        folder = Path(tmp, "images")
        folder.mkdir()
        for path in sorted(source.iterdir())[:count]:
            (folder / path.name).symlink_to(path.absolute())
        results: dict[str, dict] = {}
        prints, stage_runs = [], []
        for round_ in range(args.repeat):
            for label, kind, workers in ARMS:
                out = Path(tmp, f"{kind}{workers}-{round_}")
                result = run_arm(kind, workers, folder, out)
                if label not in results or result["images_per_s"] > results[label]["images_per_s"]:
                    results[label] = result
                prints.append(fingerprint(out))
            stage_runs.append(run_arm("stages", 1, folder, Path(tmp, f"stages-{round_}")))
        identical = all(p == prints[0] for p in prints)
        stages = {stage: min(run[stage] for run in stage_runs) for stage in STAGES}
    lines = [*report(info, count, args.repeat, results, identical), "", *stage_table(stages)]
    print("\n".join(lines))
    if args.json_out:
        record = {"machine": info, "images": count, "repeat": args.repeat, "arms": results}
        record |= {"identical": identical, "stages": stages}
        write_json(args.json_out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
