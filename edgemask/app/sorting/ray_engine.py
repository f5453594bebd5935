"""``--sort-into`` on Ray Data (``--engine ray``): the same sort as the local engine, its images spread over
the workers of a Ray cluster, a laptop's local one or many nodes'.

The pipeline, in Ray Data's terms: the driver lists the sources as the local engine does → Ray reads their
bytes (``read_binary_files``, read tasks at ``num_cpus=0``: on a small machine a read task waiting for a CPU
that the actors hold never runs) → ``map_batches`` with :class:`SortWorker`, a callable class holding one
single-threaded :class:`~edgemask.core.pipeline.Pipeline` per actor (``ActorPoolStrategy(size=N)``, one CPU
each) → the results stream back to the driver in listing order.

A worker hashes an image's bytes (SHA-256, the manifest's key), answers "already done" for a digest the
manifest held when the run started, decodes the bytes with the local engine's decoder, runs the pipeline
and cuts the crops with :func:`~edgemask.app.sorting.crops.crop_rows`: a :class:`SortOutcome` of plain
dataclasses and numpy arrays, picklable. Bad files come back as skip records with the local engine's
reasons; nothing a file does ends the batch.

The driver is the one writer: it files each outcome through the local engine's
:class:`~edgemask.app.sorting.manifest.SortFolder`, skipping a digest already recorded. So the same lock
keeps a second run out, the same manifest is the resume point, and the results equal the local engine's:
the same crops under the same names, the same rows (in the same order; a second copy of an image in one
run is "already done" as locally, because results arrive in listing order). Ray runs tasks at least once
(it retries them and restarts killed actors), so a result may arrive twice; it is filed once, because the
check is by digest and the crop names derive from the source and the face's index. Per-block manifests
merged at the end would need a second resume rule and lose all of a block to an interrupted driver; the
driver writing as results arrive loses nothing that was filed, and a crop is a few kB, so one writer
keeps up with many workers (see the scaling notes in the README).

Workers open the model files by the absolute paths the driver resolved (and verify their checksums):
on a cluster the models and the images sit on a shared path, the same on every node, or reach the nodes
with the job's ``runtime_env``. Ray is imported only when a run uses it: importing edgemask never does.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from tqdm import tqdm

from edgemask.app.runner import EXIT_FAILED, EXIT_USAGE, Console, RunStats, StopRequest, exit_code, summarize
from edgemask.app.sinks import BaseSink
from edgemask.app.sorting.cluster import (
    Cluster,
    ClusterError,
    file_log,
    ray_cluster,
    ray_failures,
    ray_output_aside,
    ray_problem,
)
from edgemask.app.sorting.crops import SortedImage, crop_rows
from edgemask.app.sorting.manifest import SortFolder
from edgemask.app.sources import (
    ALREADY_DONE,
    NOT_AN_IMAGE,
    UNREADABLE,
    ZERO_BYTE,
    ImageFiles,
    decode,
    is_live,
)
from edgemask.argtypes import at_least, host_port
from edgemask.core.imageio import is_image_file
from edgemask.core.pipeline import FramePipeline, FrameResult
from edgemask.extras import missing_extra

ENGINES = ("local", "ray")
BATCH_SIZE = 4
"""Images per block and per call of a worker: enough to amortize Ray's cost per task, few enough that
results stream back to the writer (and the bar) as they are made, and that a killed worker's retry
repeats little. Ray Data hands a block's results on only when the whole block is done."""
LIVE_OUTPUTS = ("json", "save", "show", "serve", "max_frames")


class EngineError(Exception):
    """Options the distributed engine cannot run: one line, exit code 2."""


def ray_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of a running cluster's head (``ray start --head`` prints it)."""
    host, port = host_port(text)
    if port == 0 or ":" not in text:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected HOST:PORT of the cluster's head, e.g. 10.0.0.5:6379"
        )
    return host, port


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--workers``, ``--ray-address`` and ``--verbose`` for ``--sort-into``."""
    group = parser.add_argument_group(
        "distributed sort (--sort-into on Ray; pip install 'edgemask[distributed]')",
        "the same crops and manifest as the local engine, filed by this process, computed by Ray workers",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process; ray: Ray Data workers (default: %(default)s)",
    )
    group.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help="Ray workers, one CPU and one model copy each (default: every CPU of the cluster)",
    )
    group.add_argument(
        "--ray-address",
        type=ray_address,
        metavar="HOST:PORT",
        help="join this running Ray cluster (default: a local cluster started for the run and stopped after)",
    )


def check_engine_options(args: argparse.Namespace) -> None:
    """Refuse what the distributed engine cannot do, before anything starts."""
    if args.engine != "ray":
        for flag, value in (("--workers", args.workers), ("--ray-address", args.ray_address)):
            if value is not None:
                raise EngineError(f"{flag} needs --engine ray")
        return
    if args.camera is not None or is_live(args.source):
        raise EngineError("--engine ray sorts a folder of images; a camera or a stream is live, not a batch")
    if args.sort_into is None:
        raise EngineError("--engine ray runs the --sort-into batch job; add --sort-into DIR")
    used = [
        f"--{name.replace('_', '-')}"
        for name in LIVE_OUTPUTS
        if getattr(args, name, None) not in (None, False)
    ]
    if used:
        raise EngineError(f"--engine ray writes --sort-into only; drop {', '.join(used)}")
    if problem := missing_extra("distributed", "--engine ray"):
        raise EngineError(problem)


@dataclass(frozen=True)
class SortOutcome:
    """What a worker answers for one file: the image's crops and the pipeline's result, or a skip reason
    (with the error's text for a pipeline failure). ``small`` counts the detections under the minimum
    face size that the image's pipeline run dropped."""

    path: str
    image: SortedImage | None = None
    result: FrameResult | None = None
    reason: str = ""
    detail: str = ""
    small: int = 0


class SortWorker:
    """One Ray actor: one single-threaded pipeline, answering a :class:`SortOutcome` per file."""

    def __init__(
        self, make_pipeline: Callable[[], FramePipeline], root: str, done: frozenset[str], margin: float
    ) -> None:
        self.pipeline = make_pipeline()
        self.root = root
        self.done = done
        self.margin = margin

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [
            self.sort(str(path), bytes(data))
            for path, data in zip(batch["path"], batch["bytes"], strict=True)
        ]
        column = np.empty(len(outcomes), dtype=object)
        column[:] = outcomes
        return {"outcome": column}

    def sort(self, path: str, data: bytes) -> SortOutcome:
        if not data:
            return SortOutcome(path, reason=ZERO_BYTE)
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.done:
            return SortOutcome(path, reason=ALREADY_DONE)
        image, reason = decode(data, Path(path))
        if image is None:
            return SortOutcome(path, reason=reason)
        small_before = getattr(self.pipeline, "skipped_small", 0)
        try:
            result = self.pipeline.infer(image)
        except Exception as e:  # one bad image must not end the batch: reported and counted by the driver
            return SortOutcome(path, reason=f"processing failed ({type(e).__name__})", detail=str(e))
        key = Path(os.path.relpath(path, self.root)).as_posix()
        cut = crop_rows(path, key, digest, image, result.faces, self.margin)
        return SortOutcome(path, cut, result, small=getattr(self.pipeline, "skipped_small", 0) - small_before)


@dataclass
class Plan:
    """The driver's split of the listing: files for the workers (absolute paths), and files settled
    without reading them (not images, unreadable, or done by path in a manifest from before digests)."""

    to_read: list[str]
    settled: list[tuple[str, str]]
    names: dict[str, str]
    """The name each file to read goes by in messages and the summary: its path as listed."""


def plan(source: ImageFiles, folder: SortFolder) -> Plan:
    """What the local engine would skip before decoding, decided here so Ray reads only real candidates
    (a file Ray cannot open would fail its whole read task)."""
    to_read, settled, names = [], [], {}
    for path in source.paths:
        name = str(path)
        if not is_image_file(path):
            settled.append((name, NOT_AN_IMAGE))
        elif not os.access(path, os.R_OK):
            settled.append((name, UNREADABLE))
        elif source.key(path) in folder.done.legacy_paths:
            settled.append((name, ALREADY_DONE))
        else:
            to_read.append(os.path.abspath(path))
            names[to_read[-1]] = name
    return Plan(to_read, settled, names)


@dataclass(frozen=True)
class RayRun:
    """How one distributed sort is run: the workers' pipeline, its crop margin, and the cluster."""

    make_pipeline: Callable[[], FramePipeline]
    margin: float
    workers: int | None = None
    address: tuple[str, int] | None = None
    verbose: bool = False
    quiet: bool = False


class TerminalConsole(Console):
    """The run's messages on the terminal while fd 2 carries Ray's output to its log."""

    def __init__(self, quiet: bool, terminal: TextIO) -> None:
        super().__init__(quiet)
        self.terminal = terminal

    def say(self, message: str) -> None:
        tqdm.write(f"edgemask-run: {message}", file=self.terminal)


class ClusterSummary(BaseSink):
    """The summary's lines about the cluster, the start-up (kept out of the speed) and where the output
    went."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.lines: list[str] = []

    def summary(self) -> list[str]:
        return [*self.lines, f"crops and manifest in {self.out_dir}"]


@dataclass
class PipelineCounts:
    """The workers' dropped small detections, summed, in the shape :func:`summarize` reads."""

    margin: float
    skipped_small: int = 0


def sort_on_ray(source: ImageFiles, out_dir: Path, run: RayRun, console: Console) -> int:
    """The distributed sort of ``source`` into ``out_dir``; returns the exit code."""
    folder = SortFolder(out_dir)  # the lock first: a second run is refused before any cluster starts
    try:
        stats = RunStats()
        counts = PipelineCounts(run.margin)
        report = ClusterSummary(out_dir)
        work = plan(source, folder)
        for name, reason in work.settled:
            stats.tally.skip(name, reason)
        failed = None
        with StopRequest().installed() as stop:
            if work.to_read:
                failed = run_cluster(work, source, folder, run, console, stats, counts, report, stop)
                if failed == EXIT_USAGE:
                    return failed
            stats.stopped_by_user = stats.stopped_by_user or stop.requested
    finally:
        folder.close()
    code = failed or exit_code(stats, source)
    if not run.quiet or code:
        for line in summarize(stats, source, counts, [report]):
            console.say(line)
    return code


def run_cluster(
    work: Plan,
    source: ImageFiles,
    folder: SortFolder,
    run: RayRun,
    console: Console,
    stats: RunStats,
    counts: PipelineCounts,
    report: ClusterSummary,
    stop: StopRequest,
) -> int | None:
    """Start or join the cluster and sort on it. Returns :data:`EXIT_USAGE` when the cluster could not be
    had (reported), :data:`EXIT_FAILED` when it failed mid-run (in the summary), None otherwise."""
    cluster = None
    code = None
    with ray_output_aside(run.verbose) as (terminal, log):
        shown = TerminalConsole(run.quiet, terminal)
        try:
            with ray_cluster(run.address, run.workers, run.verbose) as cluster:
                report.lines.append(
                    sort_batch(work, source, folder, run, cluster, shown, stats, counts, stop)
                )
        except ClusterError as e:
            shown.say(f"error: {e}")
            code = EXIT_USAGE
        except KeyboardInterrupt:
            stats.stopped_by_user = True
        except Exception as e:
            if not isinstance(e, ray_failures()):
                raise  # edgemask's own (a manifest that cannot be written): reported as locally
            report.lines.append(
                f"Ray stopped the run: {ray_problem(e)}; what was filed stays, a re-run goes on"
            )
            code = EXIT_FAILED
    if code == EXIT_USAGE:  # the one line says it all; what Ray said on the way is in --verbose
        if log is not None:
            log.unlink(missing_ok=True)
        return code
    where = file_log(log, cluster.logs_dir if cluster else None)
    if where is not None:
        report.lines.append(f"Ray's messages: {where}")
    return code


def sort_batch(
    work: Plan,
    source: ImageFiles,
    folder: SortFolder,
    run: RayRun,
    cluster: Cluster,
    console: TerminalConsole,
    stats: RunStats,
    counts: PipelineCounts,
    stop: StopRequest,
) -> str:
    """The files to read through ``cluster``'s workers, each outcome filed as it arrives, under one
    progress bar; returns the summary's line about the cluster."""
    workers = run.workers or max(1, cluster.cpus)
    if workers > cluster.cpus:  # an actor pool larger than the cluster would wait for CPUs for ever
        raise ClusterError(f"--workers {workers}: {cluster.description} has {cluster.cpus} CPUs")
    outcomes = stream_outcomes(work.to_read, source.root, folder, run, workers)
    bar = tqdm(
        total=len(source.paths),
        initial=len(work.settled),
        unit="img",
        file=console.terminal,
        disable=True if run.quiet else None,
    )
    asked = time.perf_counter()
    with bar:
        file_outcomes(outcomes, work.names, folder, console, stats, counts, bar, stop)
    return (
        f"{workers} Ray worker{'s' if workers != 1 else ''} on {cluster.description}; start-up "
        f"{cluster.startup_s:.1f} s for the cluster, {max(0.0, stats.started - asked):.1f} s to the first "
        "image (workers loading the models), not in the speed"
    )


def stream_outcomes(
    paths: list[str], root: Path, folder: SortFolder, run: RayRun, workers: int
) -> Iterator[SortOutcome]:
    """The Ray Data pipeline: read the files' bytes, sort them on ``workers`` actors, in listing order."""
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    dataset = ray.data.read_binary_files(
        paths,
        include_paths=True,
        num_cpus=0,
        ignore_missing_paths=True,
        override_num_blocks=math.ceil(len(paths) / BATCH_SIZE),
    )
    dataset = dataset.map_batches(
        SortWorker,
        fn_constructor_kwargs={
            "make_pipeline": run.make_pipeline,
            "root": os.path.abspath(root),
            "done": frozenset(folder.done.digests),
            "margin": run.margin,
        },
        compute=ActorPoolStrategy(size=workers),
        num_cpus=1,
        batch_size=BATCH_SIZE,
        batch_format="numpy",
    )
    for row in dataset.iter_rows():
        yield row["outcome"]


def file_outcomes(
    outcomes: Iterator[SortOutcome],
    names: dict[str, str],
    folder: SortFolder,
    console: Console,
    stats: RunStats,
    counts: PipelineCounts,
    bar: tqdm,
    stop: StopRequest,
) -> None:
    """The one writer: every outcome into the folder and the counts, as it arrives. A file listed but never
    answered for (deleted while the run read the folder) is counted as unreadable."""
    unanswered = dict(names)
    for outcome in outcomes:
        if len(unanswered) == len(names):  # the first answer: the workers are up, the speed counts from here
            stats.started = time.perf_counter()
        name = unanswered.pop(outcome.path, None)
        if name is None:
            continue  # a second answer for a file already filed
        file_one(outcome, name, folder, console, stats, counts)
        bar.update()
        if stop():
            return
    for name in unanswered.values():
        stats.tally.skip(name, UNREADABLE)


def file_one(
    outcome: SortOutcome,
    name: str,
    folder: SortFolder,
    console: Console,
    stats: RunStats,
    counts: PipelineCounts,
) -> None:
    """File one outcome as the local engine's sort sink would: a skip, a second copy of an image filed
    already, or crops and rows."""
    image, result = outcome.image, outcome.result
    if image is None or result is None:
        stats.tally.skip(name, outcome.reason)
        if outcome.reason not in (ALREADY_DONE, NOT_AN_IMAGE):
            detail = f": {outcome.detail}" if outcome.detail else ""
            console.warn(f"skipped {name}: {outcome.reason}{detail}")
        return
    if folder.is_done(image.digest):
        stats.tally.skip(name, ALREADY_DONE)
        return
    folder.record(image)
    stats.tally.frame(result.faces, result.timings)
    counts.skipped_small += outcome.small
