"""``edgemask-run``: find faces and tell masked from unmasked in camera frames, streams, videos and images.

This module parses options, finds the models and wires the parts together; the loop itself is in
``edgemask.app.runner``. Exit codes: 0 done (also after Ctrl-C), 1 nothing could be processed
or a live source was lost, 2 unusable options, a missing model, a camera that does not open, no GUI.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

from edgemask.app import autoselect
from edgemask.app.camera import Backoff, CameraError
from edgemask.app.display import gui_problem
from edgemask.app.footprint import pin_mmap_threshold
from edgemask.app.liveview import model_info, source_info
from edgemask.app.models import MODELS_ENV, ModelNotFound, resolve_model
from edgemask.app.outputs import RunOptions, open_sinks
from edgemask.app.recording import SaveError
from edgemask.app.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Console,
    RunStats,
    StopRequest,
    exit_code,
    process,
    silence_stdout,
    summarize,
)
from edgemask.app.serve import LiveServer, ServeError, add_serve_options, serve_until_stopped, serving
from edgemask.app.sinks import Sink
from edgemask.app.sorting.manifest import SortError
from edgemask.app.sorting.ray_engine import (
    EngineError,
    RayRun,
    add_engine_options,
    check_engine_options,
    sort_on_ray,
)
from edgemask.app.sources import Source, SourceError, is_live, open_source
from edgemask.app.tracking import add_tracking_options, tracked_pipeline
from edgemask.argtypes import (
    COSTLY_NETWORK_SIDE,
    at_least,
    fraction,
    in_range,
    network_side,
    side_or_off,
    size_wh,
    thread_count,
)
from edgemask.core.detectors import DetectorOptions, res10, yunet
from edgemask.core.formats import (
    AUTO,
    DEFAULT_DETECTOR,
    DETECTORS,
    FORMATS,
    PRECISIONS,
)
from edgemask.core.pipeline import DEFAULT_MARGIN, DEFAULT_MIN_FACE, FramePipeline, PipelineOptions
from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.counting import CountLineError

DEFAULT_THREADS = min(4, os.cpu_count() or 1)
SORT_NEEDS_TRACKING = (
    "--sort-into on a video, a stream or a camera files one crop per person and needs tracking "
    "(drop --no-track)"
)
MAX_MARGIN = 1.0
"""A crop grown by more than its own size per side is mostly background: the classifier was never trained
on such crops (at 5, every face came out "mask")."""

EPILOG = """\
examples:
  edgemask-run --camera 0 --show                      live view with boxes, labels and FPS
  edgemask-run --camera picam --json >> faces.jsonl   Raspberry Pi camera, one JSON line per frame
  edgemask-run --source photos/ --save annotated/     annotate a folder (never overwrites)
  edgemask-run --source 'shots/**/*.jpg' --json       a glob (quote it)
  edgemask-run --source clip.mp4 --save clip_out.mp4  every frame of a video, in order
  edgemask-run --source rtsp://cam.local/live --json  a network stream (newest frame, reconnects)
  edgemask-run --source raw/ --sort-into sorted/      crop faces into sorted/{with_mask,without_mask}/
  edgemask-run --camera 0 --detector-size 320 --threads 4   faster, for faces close to the camera
  edgemask-run --source photos/ --detector res10      OpenCV's res10 SSD instead of YuNet
  edgemask-run --source photos/ --detector yunet_masked   YuNet fine-tuned on masked faces
  edgemask-run --source photos/ --format onnx --conf 0.3
  edgemask-run --camera picam --serve 8080            live view at http://127.0.0.1:8080/ (this machine)
  edgemask-run --camera picam --serve 0.0.0.0:8080 --serve-token SECRET   reachable from the network

Live sources (cameras, streams) always process the newest frame: when inference is slower than the
camera, frames in between are dropped so results never lag. Video files are processed frame by frame.
JSON lines go to stdout, everything else (progress, warnings, the summary) to stderr.

exit codes: 0 done (also after Ctrl-C), 1 nothing processed or live source lost,
            2 bad options, missing model, camera not opening, no GUI for --show
"""


class UsageError(Exception):
    """A problem with the options or the environment: reported in one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgemask-run",
        description="Detect faces and tell whether each wears a mask, on a camera, a stream, a video,\n"
        "an image or a folder of images. Runs on LiteRT or ONNX Runtime; no TensorFlow needed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inp = parser.add_argument_group("input (exactly one)").add_mutually_exclusive_group(required=True)
    inp.add_argument(
        "--camera",
        metavar="N|picam",
        help="camera index (0, 1, ...), or picam[:N] for the Raspberry Pi camera",
    )
    inp.add_argument(
        "--source",
        metavar="SRC",
        help="an image, a folder (recursive), a glob, a video file, a camera index, "
        "or a stream URL (rtsp://, http://)",
    )

    out = parser.add_argument_group("output")
    out.add_argument("--show", action="store_true", help="show a window (q or Esc quits)")
    out.add_argument(
        "--save",
        metavar="PATH",
        type=Path,
        help="annotated output: a folder for images (an image file for one image), "
        ".mp4/.avi for a video or camera; existing files get a numbered name, never overwritten",
    )
    out.add_argument("--json", action="store_true", help="one JSON object per image/frame on stdout")
    out.add_argument(
        "--sort-into",
        metavar="DIR",
        type=Path,
        help="crop every face into DIR/with_mask/ or DIR/without_mask/ with DIR/manifest.csv; "
        "re-running skips pictures already sorted (known by their content, so new pictures with old "
        "names are sorted too); a video, stream or camera files one crop per person (the best view of "
        "their track); one run per DIR at a time",
    )
    out.add_argument(
        "--verbose",
        action="store_true",
        help="also print which model files were chosen and every candidate's measured time; with "
        "--engine ray, show Ray's own log lines too (by default they go to its log folder)",
    )
    out.add_argument(
        "--quiet",
        action="store_true",
        help="print errors only: no progress bar, no warnings, and the summary only when the run fails",
    )

    model = parser.add_argument_group(
        "models",
        f"defaults: each model's fastest file on this machine of --backend and --precision in "
        f"${MODELS_ENV}, the checkout's models/ or the files installed with edgemask; every threshold "
        "and size defaults to what the model file records",
    )
    model.add_argument(
        "--detector",
        metavar="FAMILY|PATH",
        default=DEFAULT_DETECTOR,
        help=f"face detector: {' or '.join(DETECTORS)} (its default file) or a .tflite/.onnx path "
        "(default: %(default)s)",
    )
    model.add_argument(
        "--classifier", metavar="PATH", default="classifier", help="mask classifier (.tflite or .onnx)"
    )
    model.add_argument(
        "--format",
        "--backend",
        dest="format",
        choices=[AUTO, *FORMATS],
        default=AUTO,
        help="format of the default files: LiteRT (tflite) or ONNX Runtime (onnx); auto: whichever "
        "file runs fastest on this machine, measured once (about a second) and cached "
        "(default: %(default)s)",
    )
    model.add_argument(
        "--precision",
        choices=[AUTO, *PRECISIONS],
        default=AUTO,
        help="precision of the default files; auto: the fastest on this machine, measured with --format. "
        "ONNX has no fp16 (default: %(default)s)",
    )
    model.add_argument(
        "--threads",
        type=thread_count,
        default=DEFAULT_THREADS,
        metavar="N",
        help="inference threads (default: CPU cores up to 4, here %(default)s)",
    )
    model.add_argument("--conf", type=fraction, metavar="P", help="face score threshold")
    model.add_argument("--nms", type=fraction, metavar="IOU", help="IoU threshold of non-maximum suppression")
    model.add_argument(
        "--detector-size",
        type=network_side,
        metavar="N",
        help=f"YuNet: the long side of the network input (default {yunet.DEFAULT_LONG_SIDE}); res10: its "
        f"squashed pass, N×N ({res10.PAIRED_INPUT_SIZE} beside the small-face pass, else "
        f"{res10.DEFAULT_INPUT_SIZE})",
    )
    model.add_argument(
        "--small-face-size",
        type=side_or_off(),
        metavar="N|off",
        help="res10 only: a second pass with the long side enlarged to N px, keeping only small boxes "
        f"(default {res10.DEFAULT_SMALL_FACE_SIZE}); off for speed",
    )
    model.add_argument(
        "--margin",
        type=in_range(0.0, MAX_MARGIN),
        default=DEFAULT_MARGIN,
        metavar="SHARE",
        help="grow face crops by this share per side (default: %(default)s)",
    )
    model.add_argument(
        "--min-face",
        type=at_least(1),
        default=DEFAULT_MIN_FACE,
        metavar="PX",
        help="ignore faces smaller than this (default: %(default)s)",
    )

    live = parser.add_argument_group("cameras and streams")
    live.add_argument("--camera-size", type=size_wh, metavar="WxH", help="ask the camera for this resolution")
    live.add_argument(
        "--retries",
        type=at_least(0),
        default=5,
        metavar="N",
        help="reconnect attempts when frames stop (default: %(default)s)",
    )
    live.add_argument(
        "--retry-delay",
        type=in_range(0.0, 60.0),
        default=0.5,
        metavar="S",
        help="first reconnect wait, doubled each attempt up to 10 s (default: %(default)s)",
    )
    live.add_argument(
        "--stall-timeout",
        type=in_range(0.1, 3600.0),
        default=10.0,
        metavar="S",
        help="give up when a read blocks this long (default: %(default)s)",
    )
    live.add_argument(
        "--save-fps",
        type=in_range(0.1, 1000.0),
        metavar="FPS",
        help="frame rate of a saved video (default: the source's)",
    )
    live.add_argument("--max-frames", type=at_least(1), metavar="N", help="stop after N processed frames")

    add_tracking_options(parser)
    add_serve_options(parser)
    add_engine_options(parser)
    return parser


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    detector = DetectorOptions(args.detector_size, args.small_face_size, args.conf, args.nms)
    return PipelineOptions(detector, args.margin, args.min_face, args.threads)


def run_options(
    args: argparse.Namespace, server: LiveServer | None = None, pipeline: FramePipeline | None = None
) -> RunOptions:
    return RunOptions(
        args.json,
        args.save,
        args.save_fps,
        args.sort_into,
        args.show,
        args.quiet,
        args.max_frames,
        server.view if server is not None else None,
        pipeline if isinstance(pipeline, TrackedPipeline) else None,
    )


def resolve_models(args: argparse.Namespace, options: PipelineOptions) -> tuple[Path, Path]:
    """The detector's and the classifier's files, ``auto`` picked by measurement (cached) the same way
    for this process and for Ray's workers; ``--verbose`` prints the choice."""
    console = Console(args.quiet)
    chooser = autoselect.Chooser(
        autoselect.ChoiceCache(autoselect.default_cache_path(), console.warn),
        console.warn,
        operating_point={"detector_size": args.detector_size, "small_face_size": args.small_face_size},
        detector_options=options.detector,
    )
    detector = resolve_model(args.detector, args.format, "detector", args.precision, chooser.choose)
    classifier = resolve_model(args.classifier, args.format, "classifier", args.precision, chooser.choose)
    args.model_choices = chooser.choices
    if args.verbose:
        for choice in chooser.choices:
            console.say(choice.summary())
    return detector, classifier


def load_pipeline(args: argparse.Namespace) -> FramePipeline:
    """The real two-stage pipeline from the model options."""
    from edgemask.core.backends import BackendError
    from edgemask.core.metadata import MetadataError
    from edgemask.core.pipeline import Pipeline

    pin_mmap_threshold()
    options = pipeline_options(args)
    try:
        detector, classifier = resolve_models(args, options)
        return Pipeline.from_paths(detector, classifier, options)
    except (ModelNotFound, BackendError, MetadataError, ValueError) as e:
        raise UsageError(str(e)) from e


def costly_sizes(args: argparse.Namespace) -> list[str]:
    """A warning per detector input above :data:`COSTLY_NETWORK_SIDE`: the detector's time and memory
    per frame grow with its input's pixels (YuNet int8: 4x from 640² to 1280², 16x to 2560²)."""
    warnings = []
    for flag, side in (("--detector-size", args.detector_size), ("--small-face-size", args.small_face_size)):
        if side and side > COSTLY_NETWORK_SIDE:
            ratio = (side / yunet.DEFAULT_LONG_SIDE) ** 2
            warnings.append(
                f"{flag} {side}: {ratio:.0f}x the pixels of a {yunet.DEFAULT_LONG_SIDE}-px input; expect "
                f"about {ratio:.0f}x the detector's time and memory per frame"
            )
    return warnings


def run(
    args: argparse.Namespace, make_pipeline: Callable[[argparse.Namespace], FramePipeline], console: Console
) -> int:
    check_engine_options(args)
    if args.engine == "ray":
        return run_on_ray(args, make_pipeline, console)
    if args.show and (problem := gui_problem()):
        raise UsageError(problem)
    if args.sort_into is not None and args.camera is not None and args.track is False:
        raise UsageError(SORT_NEEDS_TRACKING)
    for warning in costly_sizes(args):
        console.warn(warning)
    if args.serve is None:
        if args.serve_token is not None:
            raise UsageError("--serve-token needs --serve")
        return run_source(args, make_pipeline, console, None)
    if args.serve_token is not None and not args.serve_token.strip():
        raise UsageError("--serve-token: the token must not be empty")
    with serving(args.serve, args.serve_token, args.serve_clients, console.say) as server:
        return run_source(args, make_pipeline, console, server)


def run_on_ray(
    args: argparse.Namespace, make_pipeline: Callable[[argparse.Namespace], FramePipeline], console: Console
) -> int:
    """``--engine ray``: the workers build the pipeline from the model files resolved here, by absolute
    path and one thread each; it is built here once first, so a model problem is one line, not a failure
    in every worker."""
    from edgemask.core.backends import BackendError
    from edgemask.core.metadata import MetadataError

    try:
        detector, classifier = resolve_models(args, pipeline_options(args))
    except (ModelNotFound, BackendError, MetadataError, ValueError) as e:
        raise UsageError(str(e)) from e
    models = {"detector": str(detector.absolute()), "classifier": str(classifier.absolute())}
    worker_args = argparse.Namespace(**{**vars(args), **models, "threads": 1, "verbose": False})
    margin = make_pipeline(worker_args).margin
    source = open_input(args)
    if source.total == 0:
        source.close()
        console.say(f"no files in {source.name}")
        return EXIT_FAILED
    run = RayRun(
        partial(make_pipeline, worker_args), margin, args.workers, args.ray_address, args.verbose, args.quiet
    )
    return sort_on_ray(source, args.sort_into, run, console)


def open_input(args: argparse.Namespace) -> Source:
    """The source the options name, checked against what the outputs need."""
    spec = args.camera if args.camera is not None else args.source
    if args.camera is not None and not is_live(spec):
        raise UsageError(f"--camera {spec}: expected a camera index, picam[:N], a /dev/video device or a URL")
    backoff = Backoff(retries=max(0, args.retries), delay=max(0.0, args.retry_delay))
    outputs = tuple(p for p in (args.save, args.sort_into) if p is not None)
    try:
        source = open_source(spec, backoff, args.stall_timeout, args.camera_size, exclude=outputs)
    except CameraError as e:
        raise UsageError(str(e)) from e
    if args.sort_into is not None and source.kind != "images" and args.track is False:
        source.close()
        raise UsageError(SORT_NEEDS_TRACKING)
    return source


def run_source(
    args: argparse.Namespace,
    make_pipeline: Callable[[argparse.Namespace], FramePipeline],
    console: Console,
    server: LiveServer | None,
) -> int:
    """Open the pipeline and the source, process it, report; with a live view, keep it up after a
    finite source until the user stops."""
    pipeline = make_pipeline(args)
    source = open_input(args)
    try:
        pipeline = tracked_pipeline(pipeline, source, args, console.warn)
    except CountLineError:
        source.close()
        raise
    if source.kind == "images" and source.total == 0:
        source.close()
        console.say(f"no files in {source.name}")
        return EXIT_FAILED
    stats = RunStats()
    if server is not None:
        choices = [c.to_dict() for c in getattr(args, "model_choices", [])]
        server.view.describe({**model_info(pipeline), "choices": choices}, source_info(source), stats.tally)
    with StopRequest().installed() as stop:
        source.should_stop = stop
        sinks, finished = process_source(
            source, pipeline, run_options(args, server, pipeline), console, stats
        )
        stats.stopped_by_user = stats.stopped_by_user or stop.requested
        code = exit_code(stats, source)
        summary = summarize(stats, source, pipeline, sinks)
        if not args.quiet or code != EXIT_OK:
            for line in summary:
                console.say(line)
        if server is not None:
            stopped = "stopped by the user" if stats.stopped_by_user else summary[0]
            server.view.finish(source.end_reason or stopped)
            if finished and not stats.stopped_by_user and not (source.live and source.end_reason):
                serve_until_stopped(server, stop, console.say)
    return code


def process_source(
    source: Source, pipeline: FramePipeline, options: RunOptions, console: Console, stats: RunStats
) -> tuple[list[Sink], bool]:
    """Run the loop with the options' sinks, all closed at the end however it ends; returns the sinks
    (for the summary) and whether the loop ran to its end."""
    sinks: list[Sink] = []
    with ExitStack() as stack:
        stack.callback(source.close)
        try:
            sinks = open_sinks(options, source, pipeline.margin, stack)
            process(source, pipeline, sinks, console, stats)
            return sinks, True
        except KeyboardInterrupt:
            stats.stopped_by_user = True
        except BrokenPipeError:
            silence_stdout()
            console.say("stdout was closed (e.g. piped into head); stopping")
    return sinks, False


def main(
    argv: list[str] | None = None, make_pipeline: Callable[[argparse.Namespace], FramePipeline] | None = None
) -> int:
    """Entry point of ``edgemask-run``; ``make_pipeline`` replaces model loading (tests, embedding)."""
    args = build_parser().parse_args(argv)
    console = Console(args.quiet)
    try:
        return run(args, make_pipeline or load_pipeline, console)
    except (UsageError, SourceError, SaveError, SortError, ServeError, CountLineError, EngineError) as e:
        console.say(f"error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.say("interrupted before processing started")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
