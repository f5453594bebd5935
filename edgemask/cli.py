"""``edgemask-run``: find faces and tell masked from unmasked in camera frames, streams, videos and images.

This module parses options, finds the models and wires the parts together; the loop itself is in
``edgemask.runner``. Exit codes: 0 done (also after Ctrl-C), 1 nothing could be processed
or a live source was lost, 2 unusable options, a missing model, a camera that does not open, no GUI.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edgemask import assets
from edgemask.camera import Backoff, CameraError
from edgemask.detector import DEFAULT_INPUT_SIZE, DEFAULT_SMALL_FACE_SIZE, PAIRED_INPUT_SIZE
from edgemask.display import gui_problem
from edgemask.recording import SaveError
from edgemask.runner import (
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
from edgemask.sources import SourceError, is_live, open_source

MODELS_ENV = "EDGEMASK_MODELS"
MODEL_FILES = {
    "tflite": ("face_detector_int8.tflite", "mask_classifier_int8.tflite"),
    "onnx": ("face_detector_int8.onnx", "mask_classifier_int8.onnx"),
}
DEFAULT_THREADS = min(4, os.cpu_count() or 1)

EPILOG = """\
examples:
  edgemask-run --camera 0 --show                      live view with boxes, labels and FPS
  edgemask-run --camera picam --json >> faces.jsonl   Raspberry Pi camera, one JSON line per frame
  edgemask-run --source photos/ --save annotated/     annotate a folder (never overwrites)
  edgemask-run --source 'shots/**/*.jpg' --json       a glob (quote it)
  edgemask-run --source clip.mp4 --save clip_out.mp4  every frame of a video, in order
  edgemask-run --source rtsp://cam.local/live --json  a network stream (newest frame, reconnects)
  edgemask-run --source raw/ --sort-into sorted/      crop faces into sorted/{with_mask,without_mask}/
  edgemask-run --camera 0 --small-face-size off --threads 4   faster, for faces close to the camera
  edgemask-run --source photos/ --backend onnx --conf 0.3

Live sources (cameras, streams) always process the newest frame: when inference is slower than the
camera, frames in between are dropped so results never lag. Video files are processed frame by frame.
JSON lines go to stdout, everything else (progress, warnings, the summary) to stderr.

exit codes: 0 done (also after Ctrl-C), 1 nothing processed or live source lost,
            2 bad options, missing model, camera not opening, no GUI for --show
"""


class UsageError(Exception):
    """A problem with the options or the environment: reported in one line, exit code 2."""


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)`` (width, height); ``"300"`` → ``(300, 300)``."""
    w, _, h = text.lower().partition("x")
    try:
        size = (int(w), int(h or w))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected N or WIDTHxHEIGHT, e.g. 300 or 640x480"
        ) from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return size


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be positive")
    return value


def optional_size(text: str) -> int | None:
    """A pixel size, or ``off``/``0`` for none."""
    return None if text.lower() in ("off", "none", "0") else positive_int(text)


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: expected a value between 0 and 1")
    return value


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
        "re-running skips sources already in the manifest",
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar and no per-file warnings")

    model = parser.add_argument_group(
        "models", f"defaults: the int8 files in models/ (or ${MODELS_ENV}), made by edgemask-export"
    )
    model.add_argument("--detector", metavar="PATH", type=Path, help="face detector (.tflite or .onnx)")
    model.add_argument("--classifier", metavar="PATH", type=Path, help="mask classifier (.tflite or .onnx)")
    model.add_argument(
        "--backend",
        choices=sorted(MODEL_FILES),
        default="tflite",
        help="which default files (default: %(default)s)",
    )
    model.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help="inference threads (default: CPU cores up to 4, here %(default)s)",
    )
    model.add_argument(
        "--conf", type=fraction, metavar="P", help="face confidence threshold (default: the model's)"
    )
    model.add_argument(
        "--nms",
        type=fraction,
        metavar="IOU",
        help="IoU threshold of non-maximum suppression (default: the model's)",
    )
    model.add_argument(
        "--detector-size",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"first detector pass: the frame squashed to N×N (default: {DEFAULT_INPUT_SIZE}, what res10 "
        f"was trained at, or {PAIRED_INPUT_SIZE} beside a small-face pass; a model exported at a fixed "
        "size uses its own)",
    )
    model.add_argument(
        "--small-face-size",
        type=optional_size,
        default=DEFAULT_SMALL_FACE_SIZE,
        metavar="N|off",
        help="second pass with the longest side enlarged to N px, keeping only small boxes: finds faces "
        "under ~30 px at several times the cost; off for speed (default: %(default)s)",
    )
    model.add_argument(
        "--margin", type=float, metavar="SHARE", help="grow face crops by this share per side (default: 0.1)"
    )
    model.add_argument(
        "--min-face", type=int, metavar="PX", help="ignore faces smaller than this (default: 4)"
    )

    live = parser.add_argument_group("cameras and streams")
    live.add_argument(
        "--camera-size", type=parse_size, metavar="WxH", help="ask the camera for this resolution"
    )
    live.add_argument(
        "--retries",
        type=int,
        default=5,
        metavar="N",
        help="reconnect attempts when frames stop (default: %(default)s)",
    )
    live.add_argument(
        "--retry-delay",
        type=float,
        default=0.5,
        metavar="S",
        help="first reconnect wait, doubled each attempt up to 10 s (default: %(default)s)",
    )
    live.add_argument(
        "--stall-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up when a read blocks this long (default: %(default)s)",
    )
    live.add_argument(
        "--save-fps", type=float, metavar="FPS", help="frame rate of a saved video (default: the source's)"
    )
    live.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    return parser


def model_dirs() -> list[Path]:
    """Where default models are looked up: ``$EDGEMASK_MODELS`` alone if set, else the checkout's
    ``models/`` then ``./models``."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return [Path(env)]
    return list(dict.fromkeys([assets.REPO_ROOT / "models", Path.cwd() / "models"]))


def resolve_model(explicit: Path | None, filename: str, what: str) -> Path:
    """The model file to load, or a :class:`UsageError` naming the file and how to get it."""
    candidates = [explicit] if explicit is not None else [d / filename for d in model_dirs()]
    for path in candidates:
        if path.is_file():
            return path
    flag = f"--{what}"
    raise UsageError(
        f"{what} model not found: {candidates[0]}. Create it with edgemask-export (see "
        f"edgemask-export --help), pass {flag} PATH, or point ${MODELS_ENV} at a folder holding {filename}"
    )


def load_pipeline(args: argparse.Namespace) -> Any:
    """The real two-stage pipeline from the model options."""
    from edgemask.backends import BackendError
    from edgemask.metadata import MetadataError
    from edgemask.pipeline import Pipeline

    det_name, cls_name = MODEL_FILES[args.backend]
    detector = resolve_model(args.detector, det_name, "detector")
    classifier = resolve_model(args.classifier, cls_name, "classifier")
    extra = {k: v for k, v in (("margin", args.margin), ("min_face", args.min_face)) if v is not None}
    try:
        return Pipeline.from_paths(
            detector,
            classifier,
            args.threads,
            args.conf,
            args.nms,
            args.detector_size,
            args.small_face_size,
            **extra,
        )
    except (BackendError, MetadataError, ValueError) as e:
        raise UsageError(str(e)) from e


def run(
    args: argparse.Namespace, make_pipeline: Callable[[argparse.Namespace], Any], console: Console
) -> int:
    if args.show and (problem := gui_problem()):
        raise UsageError(problem)
    if args.sort_into is not None and args.camera is not None:
        raise UsageError("--sort-into works on images (a folder, a glob or a file), not on a camera")
    pipeline = make_pipeline(args)
    spec = args.camera if args.camera is not None else args.source
    backoff = Backoff(retries=max(0, args.retries), delay=max(0.0, args.retry_delay))
    outputs = tuple(p for p in (args.save, args.sort_into) if p is not None)
    if args.camera is not None and not is_live(spec):
        raise UsageError(f"--camera {spec}: expected a camera index, picam[:N], a /dev/video device or a URL")
    try:
        source = open_source(spec, backoff, args.stall_timeout, args.camera_size, exclude=outputs)
    except CameraError as e:
        raise UsageError(str(e)) from e
    if args.sort_into is not None and source.kind != "images":
        source.close()
        raise UsageError("--sort-into works on images (a folder, a glob or a file), not on videos or streams")
    if source.kind == "images" and source.total == 0:
        source.close()
        console.say(f"no files in {spec}")
        return EXIT_FAILED
    stats = RunStats()
    with ExitStack() as stack:
        stack.callback(source.close)
        try:
            with StopRequest().installed() as stop:
                source.should_stop = stop
                process(source, pipeline, args, stack, console, stats)
            stats.stopped_by_user = stop.requested
        except KeyboardInterrupt:
            stats.stopped_by_user = True
        except BrokenPipeError:
            silence_stdout()
            console.say("stdout was closed (e.g. piped into head); stopping")
    for line in summarize(stats, source, pipeline, args):
        console.say(line)
    return exit_code(stats, source)


def main(
    argv: list[str] | None = None, make_pipeline: Callable[[argparse.Namespace], Any] | None = None
) -> int:
    """Entry point of ``edgemask-run``; ``make_pipeline`` replaces model loading (tests, embedding)."""
    args = build_parser().parse_args(argv)
    console = Console(args.quiet)
    try:
        return run(args, make_pipeline or load_pipeline, console)
    except (UsageError, SourceError, SaveError) as e:
        console.say(f"error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.say("interrupted before processing started")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
