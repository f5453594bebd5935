"""``--track`` / ``--no-track`` and ``--count-line``: the tracked pipeline for videos, streams and cameras,
and the sink that reports its people counts (summary lines, the final JSON record, the live view).

Tracking is on by default for a sequence of frames and off for photos: photos are not a sequence, so
``--track`` on a folder is a warning and each photo is judged alone. A camera or stream that reconnects
ends every track (the scene may have changed while it was away). A stand-in pipeline that cannot
detect and classify apart (tests, embedding) is used as given.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TextIO

from edgemask.app.liveview import LiveView
from edgemask.app.sinks import BaseSink, Processed
from edgemask.app.sources import LiveStream, Source
from edgemask.core.pipeline import FramePipeline, Pipeline
from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.counting import IN, OUT, CountLine, CountLineError
from edgemask.labels import SHORT

LABELS = tuple(SHORT.values())


def count_line(text: str) -> CountLine:
    """argparse type of ``--count-line``: a malformed value is a one-line usage error."""
    try:
        return CountLine.parse(text)
    except CountLineError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "tracking (videos, streams, cameras)",
        "faces followed across frames: one id and one steady label per person, people counted, the "
        "classifier run again only when a person's label needs a new look",
    )
    group.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="track faces (default: on for videos, streams and cameras, off for images)",
    )
    group.add_argument(
        "--count-line",
        type=count_line,
        metavar="X1,Y1,X2,Y2",
        help="count people whose track crosses this segment (frame pixels): in = from its left-hand side "
        "to its right-hand side, walking from X1,Y1 to X2,Y2 on screen (down across a line drawn left to "
        "right); needs tracking",
    )


def tracked_pipeline(
    pipeline: FramePipeline, source: Source, args: argparse.Namespace, warn: Callable[[str], None]
) -> FramePipeline:
    """``pipeline`` wrapped in a :class:`TrackedPipeline` when the options and the source ask for it."""
    wanted = args.track if args.track is not None else source.kind != "images"
    if wanted and source.kind == "images":
        warn("--track: photos are not a sequence of frames; each photo is judged alone")
        wanted = False
    if args.count_line is not None and not wanted:
        raise CountLineError("--count-line needs tracking: a video, a stream or a camera, without --no-track")
    if not wanted or not isinstance(pipeline, Pipeline):
        return pipeline
    tracking = TrackedPipeline(pipeline, source.fps, args.count_line)
    if isinstance(source, LiveStream):
        source.on_reconnect = tracking.reset
    return tracking


def people_figures(tracking: TrackedPipeline) -> dict[str, Any]:
    """People by label (and line crossings by direction and label) as plain JSON values."""
    people = tracking.people()
    figures: dict[str, Any] = {"people": {"total": sum(people.values()), **{k: people[k] for k in LABELS}}}
    if tracking.counter is not None:
        crossings = tracking.crossings()
        figures["crossings"] = {
            direction: {"total": sum(n for (_, d), n in crossings.items() if d == direction)}
            | {k: crossings[k, direction] for k in LABELS}
            for direction in (IN, OUT)
        }
    return figures


class PeopleSink(BaseSink):
    """People counts of a tracked run: checked count line on the first frame, the live view's figures
    after each frame, the summary lines, and with ``--json`` a final ``{"summary": ...}`` record."""

    def __init__(self, tracking: TrackedPipeline, stream: TextIO | None, view: LiveView | None) -> None:
        self.tracking = tracking
        self.stream = stream
        self.view = view
        self.checked = False
        if view is not None:
            view.count_people(people_figures(tracking))

    def write(self, item: Processed) -> None:
        if not self.checked and self.tracking.counter is not None:
            h, w = item.frame.image.shape[:2]
            self.tracking.counter.line.check_inside(w, h)
        self.checked = True
        if self.view is not None:
            self.view.count_people(people_figures(self.tracking))

    def close(self) -> None:
        if self.stream is not None and self.checked:
            self.stream.write(json.dumps({"summary": people_figures(self.tracking)}) + "\n")
            self.stream.flush()

    def summary(self) -> list[str]:
        figures = people_figures(self.tracking)
        lines = [f"people: {describe(figures['people'])}"]
        for direction, counts in figures.get("crossings", {}).items():
            lines.append(f"count line, {direction}: {describe(counts)}")
        return lines


def describe(counts: dict[str, int]) -> str:
    labels = ", ".join(f"{k} {counts[k]}" for k in LABELS)
    return f"{counts['total']} ({labels})"
