"""The processing loop of ``edgemask-run``: every item of a source through the pipeline and into the chosen
outputs (JSON lines, annotated files, a window, sorted crops), with the counts for the final summary.

Nothing in the loop may end a batch: unreadable inputs arrive as ``Skipped`` items and a frame the
pipeline fails on is counted and reported; only the user (or a lost live source) ends it early.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from edgemask.app.display import Window
from edgemask.app.draw import annotate
from edgemask.app.liveview import LiveView
from edgemask.app.recording import ImageSaver, VideoSaver, make_saver
from edgemask.app.sorting import FaceSorter
from edgemask.app.sources import ALREADY_DONE, NOT_AN_IMAGE, Frame, Skipped, Source
from edgemask.core.pipeline import DEFAULT_MARGIN

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LISTED_SKIPS = 10


@dataclass(frozen=True)
class RunOptions:
    """The outputs of one run and when to stop, below the command line."""

    json: bool = False
    save: Path | None = None
    save_fps: float | None = None
    sort_into: Path | None = None
    show: bool = False
    quiet: bool = False
    max_frames: int | None = None
    serve: LiveView | None = None
    """Where the live view (``--serve``) picks up each processed frame."""


@dataclass
class RunStats:
    """What happened, for the final summary and the exit code."""

    processed: int = 0
    faces: Counter = field(default_factory=Counter)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    pipeline_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    stopped_by_user: bool = False
    saver: ImageSaver | VideoSaver | None = None

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
    options: RunOptions,
    stack: ExitStack,
    console: Console,
    stats: RunStats,
) -> None:
    """The loop: every item of ``source`` through the pipeline and into the chosen outputs."""
    json_out = JsonLines(sys.stdout) if options.json else None
    saver = None
    if options.save is not None:
        saver = make_saver(
            options.save,
            source.kind,
            source.kind == "images" and source.total == 1,
            options.save_fps or source.fps,
        )
        stack.callback(saver.close)
        stats.saver = saver
    sorter = None
    if options.sort_into is not None:
        sorter = FaceSorter(options.sort_into, getattr(pipeline, "margin", DEFAULT_MARGIN))
        stack.callback(sorter.close)
    if sorter is not None and hasattr(source, "skip"):
        source.skip = sorter.is_done
    window = None
    if options.show:
        window = Window()
        stack.callback(window.close)
    bar = None
    capped = options.max_frames is not None
    if not source.live:
        unit = "img" if source.kind == "images" else "frame"
        total = min(source.total, options.max_frames) if capped and source.total else source.total
        bar = stack.enter_context(
            tqdm(total=total, unit=unit, file=sys.stderr, disable=True if options.quiet else None)
        )
    meter = RateMeter()
    live = options.serve
    for item in source:
        if source.should_stop():
            break
        if bar is not None and not capped:  # every input counts; with --max-frames, processed ones
            bar.update()
        if isinstance(item, Skipped):
            stats.skip(item.name, item.reason)
            if live is not None:
                live.count_skip()
            if item.reason not in (ALREADY_DONE, NOT_AN_IMAGE):
                console.warn(f"skipped {item.name}: {item.reason}")
            continue
        try:
            faces = pipeline.infer(item.image)
        except Exception as e:  # one bad frame must not end a batch; it is reported and counted
            stats.skip(item.name, f"processing failed ({type(e).__name__})")
            if live is not None:
                live.count_skip()
            console.warn(f"skipped {item.name}: processing failed: {e}")
            continue
        stats.processed += 1
        if bar is not None and capped:
            bar.update()
        stats.pipeline_ms += pipeline.timings.total
        stats.faces.update(f.label for f in faces)
        fps = meter.tick()
        shown_fps = fps if source.kind != "images" else None
        if live is not None:
            live.publish(item, faces, pipeline.timings, fps, shown_fps)
        if json_out is not None:
            json_out.write(item, faces, pipeline.timings)
        if sorter is not None:
            sorter.add(item.key, item.image, faces)
        if saver is not None or window is not None:
            shown = annotate(item.image, faces, shown_fps)
            if saver is not None:
                saver.write(item, shown)
            if window is not None and not window.show(shown, 0 if source.kind == "images" else 1):
                stats.stopped_by_user = True
                break
        if options.max_frames is not None and stats.processed >= options.max_frames:
            break


def summarize(stats: RunStats, source: Source, pipeline: Any, options: RunOptions) -> list[str]:
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
    if stats.saver is not None:
        lines.append(stats.saver.describe())
    if options.sort_into is not None:
        lines.append(f"crops and manifest in {options.sort_into}")
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
