"""Throughput of ``--sort-into``: the local engine (one thread) against Ray Data with 1 and 2 workers, on the
same images (default: the first 400 of scenes_dev), start-up measured apart.

Each arm runs in a fresh process, one after the other, into an empty output folder of its own: the local
engine through the frame loop and its sort sink, Ray through the engine's own pieces (a local cluster of
N CPUs, the Ray Data pipeline, the driver filing every outcome). An arm's start-up is the time from its
start to its first filed image (models loaded; for Ray also the cluster and its workers); its speed is
the images after the first over the time after the first, so start-up stays out of it.
Targets: Ray with 2 workers >= 1.6x the local engine's images per second; Ray with 1 worker at most 10 %
more time per image than the local engine; the three output folders identical (rows and crop bytes).

``python benchmarks/distributed.py --help``; ``--quick`` runs 20 images. Run it on a quiet machine: the
figures are only comparable side by side within one run.
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
from edgemask.app.sorting.local import SortSink
from edgemask.app.sorting.manifest import MANIFEST, SortFolder
from edgemask.app.sorting.ray_engine import PipelineCounts, RayRun, plan, stream_outcomes
from edgemask.app.sorting.ray_engine import file_outcomes as file_ray_outcomes
from edgemask.app.sources import ImageFiles, list_files
from edgemask.argtypes import at_least
from edgemask.evaluation.machine import describe, header_markdown
from edgemask.evaluation.report import table, verdict, write_json

SPEEDUP_TARGET = 1.6
OVERHEAD_TARGET = 0.10
ARMS = (("local engine, 1 thread", "local", 1), ("Ray, 1 worker", "ray", 1), ("Ray, 2 workers", "ray", 2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--source", type=Path, help="images to sort (default: scenes_dev/images)")
    p.add_argument("--images", type=at_least(2), default=400, help="the first N images of the source")
    p.add_argument("--quick", action="store_true", help="20 images")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    p.add_argument("--arm", choices=("local", "ray"), help=argparse.SUPPRESS)
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


def ray_arm(folder: Path, out: Path, workers: int) -> list[float]:
    """The Ray engine on a local cluster of ``workers`` CPUs; the filing times."""
    args = pipeline_args(folder, out)
    margin = load_pipeline(args).margin
    run = RayRun(partial(load_pipeline, args), margin, workers)
    sort_folder = SortFolder(out)
    source = ImageFiles(list_files(folder), folder)
    work = plan(source, sort_folder)
    times: list[float] = []

    def timed(outcomes: Iterator) -> Iterator:
        for outcome in outcomes:
            times.append(time.perf_counter())
            yield outcome

    with ray_output_aside(False), ray_cluster(None, workers, False):
        outcomes = timed(stream_outcomes(work.to_read, source.root, sort_folder, run, workers))
        stats, counts = RunStats(), PipelineCounts(margin)
        with tqdm(disable=True) as bar:
            file_ray_outcomes(
                outcomes, work.names, sort_folder, Console(True), stats, counts, bar, StopRequest()
            )
    sort_folder.close()
    return times


def child(args: argparse.Namespace) -> int:
    """One arm in this fresh process: prints its start-up and speed as JSON."""
    started = time.perf_counter()
    if args.arm == "local":
        times = local_arm(args.folder, args.out)
    else:
        times = ray_arm(args.folder, args.out, args.workers)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(json.dumps({"images": len(times), "startup_s": times[0] - started, "images_per_s": steady}))
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


def report(info: dict, images: int, results: dict[str, dict], identical: bool) -> list[str]:
    local, one, two = (results[label] for label, _, _ in ARMS)
    speedup = two["images_per_s"] / local["images_per_s"]
    overhead = local["images_per_s"] / one["images_per_s"] - 1
    rows = [
        [
            label,
            f"{r['images']}",
            f"{r['startup_s']:.1f}",
            f"{r['images_per_s']:.2f}",
            f"{1e3 / r['images_per_s']:.0f}",
        ]
        for label, r in results.items()
    ]
    return [
        header_markdown(info),
        "",
        f"--sort-into on {images} images (scenes_dev), each arm a fresh process into an empty folder",
        "",
        *table(["engine", "images", "start-up s", "images/s after the first", "ms per image"], rows),
        "",
        f"{verdict(speedup >= SPEEDUP_TARGET)} Ray with 2 workers: {speedup:.2f}x the local engine's "
        f"throughput (target >= {SPEEDUP_TARGET}x)",
        f"{verdict(overhead <= OVERHEAD_TARGET)} Ray with 1 worker: {overhead:+.1%} time per image against "
        f"the local engine (target <= +{OVERHEAD_TARGET:.0%})",
        f"{verdict(identical)} the three output folders are identical (manifest rows and crop bytes)",
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
        results, prints = {}, []
        for label, kind, workers in ARMS:
            out = Path(tmp, f"{kind}{workers}")
            results[label] = run_arm(kind, workers, folder, out)
            prints.append(fingerprint(out))
        identical = all(p == prints[0] for p in prints)
    lines = report(info, count, results, identical)
    print("\n".join(lines))
    if args.json_out:
        write_json(args.json_out, {"machine": info, "images": count, "arms": results, "identical": identical})
    return 0


if __name__ == "__main__":
    sys.exit(main())
