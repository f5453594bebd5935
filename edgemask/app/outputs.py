"""Which sinks a run's options ask for, opened in order and registered for closing: the one place that
turns ``--json``, ``--save``, ``--sort-into``, ``--show``, ``--serve`` and ``--max-frames`` into outputs."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from edgemask.app.display import Window
from edgemask.app.liveview import LiveView
from edgemask.app.recording import make_saver
from edgemask.app.runner import FrameLimit, ProgressSink
from edgemask.app.sinks import JsonLinesSink, LiveSink, SaveSink, Sink, WindowSink
from edgemask.app.sorting.local import SortSink
from edgemask.app.sorting.manifest import SortFolder
from edgemask.app.sources import Source


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


def open_sinks(options: RunOptions, source: Source, margin: float, stack: ExitStack) -> list[Sink]:
    """The run's sinks, each closed by ``stack`` when the run ends; the frame limit goes last, so the
    last frame reaches every output."""
    sinks: list[Sink] = []

    def add(sink: Sink) -> None:
        stack.callback(sink.close)
        sinks.append(sink)

    stills = source.kind == "images"
    if options.json:
        add(JsonLinesSink(sys.stdout))
    if options.save is not None:
        single = stills and source.total == 1
        add(SaveSink(make_saver(options.save, source.kind, single, options.save_fps or source.fps)))
    if options.sort_into is not None:
        folder = SortFolder(options.sort_into)
        if hasattr(source, "done"):
            source.done = folder.is_done
        add(SortSink(folder, margin))
    if options.show:
        add(WindowSink(Window(), stills))
    if options.serve is not None:
        add(LiveSink(options.serve))
    if not source.live:
        capped = options.max_frames is not None
        total = min(source.total, options.max_frames) if capped and source.total else source.total
        unit = "img" if stills else "frame"
        bar = tqdm(total=total, unit=unit, file=sys.stderr, disable=True if options.quiet else None)
        add(ProgressSink(bar, count_skips=not capped))
    if options.max_frames is not None:
        add(FrameLimit(options.max_frames))
    return sinks
