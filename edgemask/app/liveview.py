"""What the processing loop shows to the live view's HTTP clients: the newest frame and running figures.

The loop only ever hands over references and bumps counters under one short lock, so a viewer can never
slow or stall it: annotating and JPEG-encoding happen in the clients' threads, once per frame that some
client actually asks for, and a frame nobody asked for is simply replaced by the next one. Memory stays
flat: one frame, one JPEG and a fixed window of latencies, whatever the run length or the number of
viewers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgemask.app.draw import annotate
from edgemask.app.sources import Frame, Source
from edgemask.app.tally import STAGES, Tally
from edgemask.core.pipeline import Face, FrameResult
from edgemask.labels import SHORT

LABELS = tuple(SHORT.values())
"""Counted face labels, as reported everywhere else (``mask``, ``no_mask``)."""
LATENCY_WINDOW = 1000
"""Latency quantiles describe this many most recent frames, so they follow changes in the scene."""
JPEG_QUALITY = 80
QUANTILES = (0.5, 0.9, 0.99)


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank ``q``-quantile of ascending ``ordered`` (always one of the samples); None when empty."""
    if not ordered:
        return None
    rank = math.ceil(q * len(ordered) - 1e-9)  # the tolerance keeps 0.9 × 10 at rank 9, not 10
    return ordered[min(max(rank, 1), len(ordered)) - 1]


class LatestFrame:
    """A one-slot holder of the newest frame. ``put`` replaces the slot and wakes waiting clients;
    ``next_after`` gives a client the newest frame it has not had yet, as JPEG, encoded at most once."""

    def __init__(self, quality: int = JPEG_QUALITY) -> None:
        self.quality = quality
        self._ready = threading.Condition()
        self._seq = 0
        self._raw: tuple[np.ndarray, Sequence[Face], float | None] | None = None
        self._done = False
        self._encode_lock = threading.Lock()
        self._encoded: tuple[int, bytes] = (0, b"")

    def put(self, image: np.ndarray, faces: Sequence[Face], fps: float | None) -> None:
        with self._ready:
            self._seq += 1
            self._raw = (image, faces, fps)
            self._ready.notify_all()

    def end(self) -> None:
        """No more frames will come (the source ended or the server stops): waiting clients wake up."""
        with self._ready:
            self._done = True
            self._ready.notify_all()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def seq(self) -> int:
        return self._seq

    def next_after(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """``(sequence, jpeg)`` of a frame newer than ``seq``, waiting up to ``timeout`` s; None if none
        came (then ``done`` tells whether one ever will)."""
        with self._ready:
            self._ready.wait_for(lambda: self._seq > seq or self._done, timeout)
            if self._seq <= seq or self._raw is None:
                return None
            newest, raw = self._seq, self._raw
        return self._jpeg(newest, raw)

    def _jpeg(self, seq: int, raw: tuple[np.ndarray, Sequence[Face], float | None]) -> tuple[int, bytes]:
        with self._encode_lock:
            if self._encoded[0] < seq:
                image, faces, fps = raw
                ok, buffer = cv2.imencode(
                    ".jpg", annotate(image, faces, fps), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
                )
                if ok:
                    self._encoded = (seq, buffer.tobytes())
            return self._encoded


class LiveView:
    """The newest frame of one run and its running figures, fed by the processing loop, read by the server.
    The counts are the run's own :class:`~edgemask.app.tally.Tally` (``describe`` hands it over), so a
    face is counted once, for the summary and the live view alike."""

    def __init__(self, window: int = LATENCY_WINDOW, quality: int = JPEG_QUALITY) -> None:
        self.frames = LatestFrame(quality)
        self.tally = Tally()
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._ended_at: float | None = None
        self._end_reason: str | None = None
        self._last: dict[str, Any] | None = None
        self._fps: float | None = None
        self._recent = {stage: deque(maxlen=window) for stage in STAGES}
        self._models: dict[str, str] = {}
        self._source: dict[str, Any] = {}

    def describe(self, models: dict[str, str], source: dict[str, Any], tally: Tally | None = None) -> None:
        """What runs on what, and the run's counts; called when processing starts, so ``elapsed_s``
        leaves out model loading."""
        with self._lock:
            self._models, self._source = dict(models), dict(source)
            self._started = time.monotonic()
            if tally is not None:
                self.tally = tally

    def publish(self, frame: Frame, result: FrameResult, fps: float | None, shown_fps: float | None) -> None:
        """One processed frame (already counted in the tally): its latencies, and the frame itself for the
        picture (annotated with ``shown_fps``, None for still images)."""
        h, w = frame.image.shape[:2]
        last = {"index": frame.index, "name": frame.name, "width": w, "height": h}
        last["faces"] = face_counts(result.faces)
        last["ms"] = result.timings.to_dict()
        with self._lock:
            self._last = last
            self._fps = fps
            for stage in STAGES:
                self._recent[stage].append(getattr(result.timings, stage))
        self.frames.put(frame.image, result.faces, shown_fps)

    def finish(self, reason: str) -> None:
        """The source has ended (``reason`` says how): figures freeze, streams end after the last frame."""
        with self._lock:
            self._ended_at = time.monotonic()
            self._end_reason = reason
        self.frames.end()

    def snapshot(self) -> dict[str, Any]:
        """Every figure as plain JSON values; the page, ``/stats.json`` and ``/metrics`` all render this."""
        with self._lock:
            recent = {stage: list(samples) for stage, samples in self._recent.items()}
            ended = self._ended_at is not None
            elapsed = (self._ended_at if ended else time.monotonic()) - self._started
            counts = self.tally.figures()
            figures = {
                "frames": counts.frames,
                "skipped": counts.skipped,
                "faces": {"total": sum(counts.faces.values()), **{k: counts.faces.get(k, 0) for k in LABELS}},
                "last_frame": self._last,
                "fps": None if self._fps is None else round(self._fps, 2),
                "models": self._models,
                "source": self._source,
                "ended": ended,
                "end_reason": self._end_reason,
                "status": f"ended: {self._end_reason}" if ended else "running",
                "elapsed_s": round(elapsed, 3),
            }
        count = counts.frames
        figures["ms"] = {
            stage: stage_figures(recent[stage], counts.stage_ms[stage], count) for stage in STAGES
        }
        return figures


def stage_figures(recent: list[float], total_ms: float, count: int) -> dict[str, Any]:
    """Last, mean and quantiles (over ``recent``) of one stage, in ms, with the running sum and count."""
    ordered = sorted(recent)
    figures: dict[str, Any] = {
        "last": round(recent[-1], 2) if recent else None,
        "mean": round(total_ms / count, 2) if count else None,
    }
    for q in QUANTILES:
        value = quantile(ordered, q)
        figures[f"p{round(q * 100)}"] = None if value is None else round(value, 2)
    figures["sum"] = round(total_ms, 3)
    figures["count"] = count
    return figures


def face_counts(faces: Sequence[Face]) -> dict[str, int]:
    labels = Counter(face.label for face in faces)
    return {"total": len(faces), **{label: labels[label] for label in LABELS}}


def model_info(pipeline: Any) -> dict[str, str]:
    """File names, detector family and runtime of a loaded pipeline (``unknown`` for a stand-in)."""
    detector = getattr(pipeline, "detector", None)
    classifier = getattr(pipeline, "classifier", None)
    backend = getattr(detector, "backend", None)
    return {
        "detector": file_name(detector),
        "family": str(getattr(detector, "family", "unknown")),
        "classifier": file_name(classifier),
        "runtime": str(getattr(backend, "name", "unknown")),
    }


def file_name(stage: Any) -> str:
    path = getattr(getattr(stage, "backend", None), "path", None)
    return Path(path).name if path is not None else "unknown"


def source_info(source: Source) -> dict[str, Any]:
    return {"name": source.name, "kind": source.kind, "total": source.total, "live": source.live}
