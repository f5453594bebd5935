"""``edgemask-run``: find faces and tell masked from unmasked in camera frames, streams, videos and images.

This module only parses options and wires the parts together; reading sources, drawing, saving and
sorting live in their own modules. Exit codes: 0 done (also after Ctrl-C), 1 nothing could be processed
or a live source was lost, 2 unusable options, a missing model, a camera that does not open, no GUI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from edgemask import assets
from edgemask.camera import Backoff, CameraError
from edgemask.display import Window, gui_problem
from edgemask.draw import annotate
from edgemask.recording import SaveError, make_saver
from edgemask.sorting import FaceSorter
from edgemask.sources import (
    ALREADY_DONE,
    NOT_AN_IMAGE,
    Frame,
    Skipped,
    Source,
    SourceError,
    is_live,
    open_source,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MODELS_ENV = "EDGEMASK_MODELS"
MODEL_FILES = {
    "tflite": ("face_detector_int8.tflite", "mask_classifier_int8.tflite"),
    "onnx": ("face_detector_int8.onnx", "mask_classifier_int8.onnx"),
}
DEFAULT_THREADS = min(4, os.cpu_count() or 1)
LISTED_SKIPS = 10

EPILOG = """\
examples:
  edgemask-run --camera 0 --show                      live view with boxes, labels and FPS
  edgemask-run --camera picam --json >> faces.jsonl   Raspberry Pi camera, one JSON line per frame
  edgemask-run --source photos/ --save annotated/     annotate a folder (never overwrites)
  edgemask-run --source 'shots/**/*.jpg' --json       a glob (quote it)
  edgemask-run --source clip.mp4 --save clip_out.mp4  every frame of a video, in order
  edgemask-run --source rtsp://cam.local/live --json  a network stream (newest frame, reconnects)
  edgemask-run --source raw/ --sort-into sorted/      crop faces into sorted/{with_mask,without_mask}/
  edgemask-run --source photos/ --backend onnx --detector-size 640x480 --conf 0.3

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
    model.add_argument("--conf", type=fraction, help="face confidence threshold (default: the model's)")
    model.add_argument(
        "--nms", type=fraction, help="IoU threshold of non-maximum suppression (default: the model's)"
    )
    model.add_argument(
        "--detector-size",
        type=parse_size,
        metavar="N|WxH",
        help="detector input size, e.g. 300 or 640x480: larger finds smaller faces, at more cost "
        "(default: the model's, else 300)",
    )
    model.add_argument("--margin", type=float, help="grow face crops by this share per side (default: 0.1)")
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
    size = None if args.detector_size is None else (args.detector_size[1], args.detector_size[0])
    extra = {k: v for k, v in (("margin", args.margin), ("min_face", args.min_face)) if v is not None}
    try:
        return Pipeline.from_paths(detector, classifier, args.threads, args.conf, args.nms, size, **extra)
    except (BackendError, MetadataError, ValueError) as e:
        raise UsageError(str(e)) from e


@dataclass
class RunStats:
    """What happened, for the final summary and the exit code."""

    processed: int = 0
    faces: Counter = field(default_factory=Counter)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    pipeline_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    stopped_by_user: bool = False

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason].append(name)


class Console:
    """stderr messages that do not tear the progress bar; stdout is left to JSON lines."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, message: str) -> None:
        tqdm.write(f"edgemask-run: {message}", file=sys.stderr)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.say(message)


class JsonLines:
    """One JSON object per processed frame on ``stream``, flushed at once so pipes see it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, frame: Frame, faces: list, timings: Any) -> None:
        h, w = frame.image.shape[:2]
        record = {
            "source": frame.name,
            "frame": frame.index,
            "width": w,
            "height": h,
            "faces": [f.to_dict() for f in faces],
            "ms": timings.to_dict(),
        }
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


class RateMeter:
    """Frames per second, smoothed, for the on-screen counter."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self.last: float | None = None
        self.fps: float | None = None

    def tick(self) -> float | None:
        now = time.perf_counter()
        if self.last is not None and now > self.last:
            rate = 1.0 / (now - self.last)
            self.fps = rate if self.fps is None else self.smoothing * self.fps + (1 - self.smoothing) * rate
        self.last = now
        return self.fps


class StopRequest:
    """Ctrl-C and SIGTERM (systemd or docker stop) ask for a stop at the next frame boundary, so every
    processed frame keeps all of its outputs and videos are finalized; a second signal stops at once.

    The handler only flips a flag: taking locks in a signal handler could deadlock the main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def silence_stdout() -> None:
    """The reader of our stdout went away: point it at /dev/null so Python's final flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def process(
    source: Source,
    pipeline: Any,
    args: argparse.Namespace,
    stack: ExitStack,
    console: Console,
    stats: RunStats,
) -> None:
    """The loop: every item of ``source`` through the pipeline and into the chosen outputs."""
    json_out = JsonLines(sys.stdout) if args.json else None
    saver = None
    if args.save is not None:
        saver = make_saver(
            args.save, source.kind, source.kind == "images" and source.total == 1, args.save_fps or source.fps
        )
        stack.callback(saver.close)
    sorter = FaceSorter(args.sort_into, getattr(pipeline, "margin", 0.1)) if args.sort_into else None
    if sorter is not None and hasattr(source, "skip"):
        source.skip = sorter.is_done
    window = None
    if args.show:
        window = Window()
        stack.callback(window.close)
    bar = None
    if not source.live:
        unit = "img" if source.kind == "images" else "frame"
        bar = stack.enter_context(
            tqdm(total=source.total, unit=unit, file=sys.stderr, disable=True if args.quiet else None)
        )
    meter = RateMeter()
    for item in source:
        if source.should_stop():
            break
        if bar is not None:
            bar.update()
        if isinstance(item, Skipped):
            stats.skip(item.name, item.reason)
            if item.reason not in (ALREADY_DONE, NOT_AN_IMAGE):
                console.warn(f"skipped {item.name}: {item.reason}")
            continue
        try:
            faces = pipeline.infer(item.image)
        except Exception as e:  # one bad frame must not end a batch; it is reported and counted
            stats.skip(item.name, f"processing failed ({type(e).__name__})")
            console.warn(f"skipped {item.name}: processing failed: {e}")
            continue
        stats.processed += 1
        stats.pipeline_ms += pipeline.timings.total
        stats.faces.update(f.label for f in faces)
        fps = meter.tick()
        if json_out is not None:
            json_out.write(item, faces, pipeline.timings)
        if sorter is not None:
            sorter.add(item.key, item.image, faces)
        if saver is not None or window is not None:
            shown = annotate(item.image, faces, fps if source.kind != "images" else None)
            if saver is not None:
                saver.write(item, shown)
            if window is not None and not window.show(shown, 0 if source.kind == "images" else 1):
                break
        if args.max_frames is not None and stats.processed >= args.max_frames:
            break


def summarize(stats: RunStats, source: Source, pipeline: Any, args: argparse.Namespace) -> list[str]:
    unit = "images" if source.kind == "images" else "frames"
    elapsed = time.perf_counter() - stats.started
    labels = ", ".join(f"{k} {v}" for k, v in sorted(stats.faces.items())) or "none"
    lines = [f"{stats.processed} {unit} processed, {sum(stats.faces.values())} faces ({labels})"]
    small = getattr(pipeline, "skipped_small", 0)
    if small:
        lines.append(f"{small} detections smaller than the minimum face size ignored")
    for reason, names in sorted(stats.skipped.items()):
        lines.append(f"skipped {len(names)}: {reason}")
        if reason != ALREADY_DONE:
            lines += [f"    {n}" for n in names[:LISTED_SKIPS]]
            if len(names) > LISTED_SKIPS:
                lines.append(f"    ... and {len(names) - LISTED_SKIPS} more")
    dropped = getattr(source, "dropped", 0)
    if dropped:
        lines.append(f"{dropped} camera frames dropped to stay current (newest frame first)")
    if stats.processed:
        lines.append(
            f"speed: {stats.processed / elapsed:.1f} {unit}/s overall, "
            f"{stats.pipeline_ms / stats.processed:.1f} ms per {unit[:-1]} in the models"
        )
    if args.sort_into is not None:
        lines.append(f"crops and manifest in {args.sort_into}")
    if source.end_reason:
        lines.append(f"stopped: {source.end_reason}")
    if stats.stopped_by_user:
        lines.append("stopped by the user; outputs are complete")
    return lines


def exit_code(stats: RunStats, source: Source) -> int:
    if stats.stopped_by_user:
        return EXIT_OK
    if source.live and source.end_reason:
        return EXIT_FAILED
    return EXIT_OK if stats.processed or stats.skipped.get(ALREADY_DONE) else EXIT_FAILED


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
