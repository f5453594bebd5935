"""The processing loop of ``edgemask-run``: source → pipeline → sinks. Every item of a source goes through
the pipeline (:class:`~edgemask.core.pipeline.FramePipeline`) and into each chosen output
(:mod:`edgemask.app.sinks`), counted once for the final summary.

Nothing in the loop may end a batch: unreadable inputs arrive as ``Skipped`` items and a frame the
pipeline fails on is counted and reported; only the user (or a lost live source, or ``--max-frames``)
ends it early.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm import tqdm

from edgemask.app.sinks import BaseSink, Processed, Sink, StopRun
from edgemask.app.sources import ALREADY_DONE, NOT_AN_IMAGE, Skipped, Source
from edgemask.app.tally import Tally
from edgemask.core.pipeline import FramePipeline

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LISTED_SKIPS = 10


@dataclass
class RunStats:
    """What happened, for the final summary and the exit code; the counts are the one :class:`Tally`."""

    tally: Tally = field(default_factory=Tally)
    started: float = field(default_factory=time.perf_counter)
    stopped_by_user: bool = False


class Console:
    """stderr messages that do not tear the progress bar; stdout is left to JSON lines."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, message: str) -> None:
        tqdm.write(f"edgemask-run: {message}", file=sys.stderr)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.say(message)


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
    source: Source, pipeline: FramePipeline, sinks: Sequence[Sink], console: Console, stats: RunStats
) -> None:
    """The loop: every item of ``source`` through the pipeline and into every sink. A skipped input or a
    frame the pipeline fails on is counted and reported, never the end of a batch."""
    meter = RateMeter()
    stills = source.kind == "images"
    for item in source:
        if source.should_stop():
            break
        if isinstance(item, Skipped):
            stats.tally.skip(item.name, item.reason)
            for sink in sinks:
                sink.skipped(item)
            if item.reason not in (ALREADY_DONE, NOT_AN_IMAGE):
                console.warn(f"skipped {item.name}: {item.reason}")
            continue
        try:
            result = pipeline.infer(item.image)
        except Exception as e:  # one bad frame must not end a batch; it is reported and counted
            skipped = Skipped(item.name, f"processing failed ({type(e).__name__})", item.index)
            stats.tally.skip(skipped.name, skipped.reason)
            for sink in sinks:
                sink.skipped(skipped)
            console.warn(f"skipped {item.name}: processing failed: {e}")
            continue
        stats.tally.frame(result.faces, result.timings)
        fps = meter.tick()
        processed = Processed(item, result, fps, None if stills else fps)
        try:
            for sink in sinks:
                sink.write(processed)
        except FrameLimitReached:
            break
        except StopRun:
            stats.stopped_by_user = True
            break


class ProgressSink(BaseSink):
    """The progress bar over a finite source: every input counts, or with ``--max-frames`` the processed
    frames up to it."""

    def __init__(self, bar: tqdm, count_skips: bool) -> None:
        self.bar = bar
        self.count_skips = count_skips

    def close(self) -> None:
        self.bar.close()

    def write(self, item: Processed) -> None:
        self.bar.update()

    def skipped(self, item: Skipped) -> None:
        if self.count_skips:
            self.bar.update()


class FrameLimit(BaseSink):
    """``--max-frames N``: ends the run after N processed frames."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def write(self, item: Processed) -> None:
        self.seen += 1
        if self.seen >= self.limit:
            raise FrameLimitReached


class FrameLimitReached(StopRun):
    """The frame limit, not the user, ended the run."""


def plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def summarize(stats: RunStats, source: Source, pipeline: FramePipeline, sinks: Sequence[Sink]) -> list[str]:
    unit = "image" if source.kind == "images" else "frame"
    elapsed = time.perf_counter() - stats.started
    tally = stats.tally
    faces = sum(tally.faces.values())
    labels = ", ".join(f"{k} {v}" for k, v in sorted(tally.faces.items())) or "none"
    lines = [f"{plural(tally.frames, unit)} processed, {plural(faces, 'face')} ({labels})"]
    done = len(tally.skipped.get(ALREADY_DONE, ()))
    if done and not tally.frames:
        lines[0] = f"nothing new: {plural(done, unit)} already done (exit 0)"
    small = getattr(pipeline, "skipped_small", 0)
    if small:
        lines.append(f"{plural(small, 'detection')} smaller than the minimum face size ignored")
    for reason, names in sorted(tally.skipped.items()):
        lines.append(f"skipped {len(names)}: {reason}")
        if reason != ALREADY_DONE:
            lines += [f"    {n}" for n in names[:LISTED_SKIPS]]
            if len(names) > LISTED_SKIPS:
                lines.append(f"    ... and {len(names) - LISTED_SKIPS} more")
    dropped = getattr(source, "dropped", 0)
    if dropped:
        lines.append(f"{plural(dropped, 'camera frame')} dropped to stay current (newest frame first)")
    if tally.frames:
        lines.append(
            f"speed: {tally.frames / elapsed:.1f} {unit}s/s overall, "
            f"{tally.stage_ms['total'] / tally.frames:.1f} ms per {unit} in the models"
        )
    for sink in sinks:
        lines += sink.summary()
    if source.end_reason:
        lines.append(f"stopped: {source.end_reason}")
    if stats.stopped_by_user:
        lines.append("stopped by the user; outputs are complete")
    return lines


def exit_code(stats: RunStats, source: Source) -> int:
    """0 done (also when the user stopped, or when every input was already done), 1 nothing processed or
    a live source lost."""
    if stats.stopped_by_user:
        return EXIT_OK
    if source.live and source.end_reason:
        return EXIT_FAILED
    return EXIT_OK if stats.tally.frames or stats.tally.skipped.get(ALREADY_DONE) else EXIT_FAILED
