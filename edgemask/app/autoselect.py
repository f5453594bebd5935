"""The fastest shipped file of each model, measured on this machine once and remembered.

Which of a model's files runs fastest (LiteRT or ONNX Runtime, int8 or fp32) differs between CPUs of one
architecture: int8 wins with AVX-512 VNNI and loses with AVX2 alone, and a fixed table per architecture
cannot tell them apart. So, like FFTW's wisdom or cuDNN's benchmark mode, each candidate file is timed a
few times at the run's operating point (a synthetic frame for a detector, a synthetic crop for the
classifier) and the choice is cached, keyed by the CPU, the runtime libraries' versions, the operating
point and the files' digests: any change measures again.

Times are the process's CPU time at 1 thread, the minimum of a few runs: on a machine shared with other
work, wall-clock times swing by 2x from one run to the next while CPU time holds within a few percent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemask import assets
from edgemask.assets import file_digest
from edgemask.core.formats import MODELS, Variant
from edgemask.core.machine_id import cpu_model, package_versions

CACHE_FILE = "file-choice.json"
CACHE_VERSION = 1
TIMED_RUNS = 5
"""Timed runs per candidate after one untimed run; the choice for YuNet's four files costs ~0.3 s."""
KEY_PACKAGES = ("ai-edge-litert", "onnxruntime", "numpy", "opencv-python-headless", "opencv-python")
SYNTHETIC_FRAME = (480, 640)
"""A 4:3 frame, which YuNet pads to 640x480 at its default long side."""
SYNTHETIC_CROP = 64


@dataclass(frozen=True)
class Candidate:
    """One shipped file of a model."""

    variant: Variant
    path: Path


@dataclass
class Choice:
    """The file picked for a model, every candidate's time (ms) and why others could not run."""

    model: str
    variant: str
    path: Path
    times_ms: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cached: bool = False

    def summary(self) -> str:
        """``yunet: tflite int8 (7.9 ms; onnx fp32 9.5 ms, ...), measured`` for ``--verbose``."""
        others = [f"{v} {ms:.1f} ms" for v, ms in sorted(self.times_ms.items(), key=lambda kv: kv[1])]
        others += [f"{v} failed" for v in self.failed]
        how = "cached" if self.cached else "measured" if self.times_ms else "the only file"
        timed = f" ({'; '.join(others)})" if others else ""
        return f"{self.model}: {self.path.name}{timed}, {how}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "variant": self.variant,
            "file": self.path.name,
            "times_ms": {k: round(v, 2) for k, v in self.times_ms.items()},
            "failed": dict(self.failed),
            "cached": self.cached,
        }


def default_cache_path() -> Path:
    """Beside the downloads: ``$XDG_CACHE_HOME/edgemask/``, else ``~/.cache/edgemask/``."""
    return assets.cache_dir() / CACHE_FILE


def machine_key() -> dict[str, Any]:
    """What the speed of a file depends on besides the file."""
    versions = package_versions(KEY_PACKAGES)
    return {"cpu": cpu_model(), "packages": {k: v for k, v in versions.items() if v != "not installed"}}


def cache_key(model: str, candidates: list[Candidate], operating_point: dict[str, Any]) -> str:
    key = {
        "machine": machine_key(),
        "model": model,
        "operating_point": operating_point,
        "files": [[c.variant.name, file_digest(c.path)] for c in candidates],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class ChoiceCache:
    """The cache file: unreadable or corrupt means empty (one warning); an unwritable folder keeps the
    choices in memory (one warning)."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        self.writable = True
        self.entries = self.read()

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError) as e:
            self.warn(f"model choice cache {self.path} unreadable ({e}); measuring again")
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            self.warn(f"model choice cache {self.path} is not this version's; measuring again")
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry
        if not self.writable:
            return
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"version": CACHE_VERSION, "entries": self.entries}, indent=1))
            os.replace(partial, self.path)
        except OSError as e:
            self.writable = False
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            self.warn(f"cannot write the model choice cache in {self.path.parent} ({e}); kept in memory")


def synthetic_frame(model: str) -> np.ndarray:
    """Seeded noise: a detector's time hardly depends on the content, and no file is read."""
    shape = SYNTHETIC_FRAME if MODELS[model].task == "detect" else (SYNTHETIC_CROP, SYNTHETIC_CROP)
    return np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)


def load_runner(model: str, path: Path, detector_options: Any) -> Callable[[], Any]:
    """One call of a loaded ``model`` file as the pipeline makes it, at 1 thread."""
    image = synthetic_frame(model)
    if MODELS[model].task == "detect":
        from edgemask.core.detectors import load_detector

        detector = load_detector(path, detector_options, threads=1)
        return lambda: detector.detect(image)
    from edgemask.core.classifier import MaskClassifier

    classifier = MaskClassifier(path, threads=1)
    return lambda: classifier.infer([image])


def time_ms(run: Callable[[], Any], clock: Callable[[], float], runs: int = TIMED_RUNS) -> float:
    """The fastest of ``runs`` calls after an untimed one (which sets up the runtime's buffers)."""
    run()
    best = float("inf")
    for _ in range(runs):
        start = clock()
        run()
        best = min(best, clock() - start)
    return best * 1000.0


@dataclass
class Chooser:
    """Picks a file per model, measuring only what the cache does not know; ``choices`` keeps every
    answer for ``--verbose`` and the live view."""

    cache: ChoiceCache
    warn: Callable[[str], None]
    operating_point: dict[str, Any] = field(default_factory=dict)
    detector_options: Any = None
    clock: Callable[[], float] = time.process_time
    load: Callable[[str, Path, Any], Callable[[], Any]] = load_runner
    choices: list[Choice] = field(default_factory=list)

    def choose(self, model: str, candidates: list[Candidate]) -> Path:
        """The fastest of ``candidates``; raises ValueError when none of them runs."""
        choice = self.pick(model, candidates)
        self.choices.append(choice)
        return choice.path

    def pick(self, model: str, candidates: list[Candidate]) -> Choice:
        if len(candidates) == 1:
            (only,) = candidates
            return Choice(model, only.variant.name, only.path)
        key = cache_key(model, candidates, self.operating_point)
        by_name = by_variant(candidates)
        entry = self.cache.get(key)
        if entry is not None and entry.get("variant") in by_name:
            times = {str(k): float(v) for k, v in (entry.get("times_ms") or {}).items()}
            failed = {str(k): str(v) for k, v in (entry.get("failed") or {}).items()}
            chosen = by_name[entry["variant"]]
            return Choice(model, chosen.variant.name, chosen.path, times, failed, cached=True)
        choice = self.measure(model, candidates)
        self.cache.put(key, {k: v for k, v in choice.to_dict().items() if k != "cached"})
        return choice

    def measure(self, model: str, candidates: list[Candidate]) -> Choice:
        times: dict[str, float] = {}
        failed: dict[str, str] = {}
        for candidate in candidates:
            name = candidate.variant.name
            try:
                times[name] = time_ms(self.load(model, candidate.path, self.detector_options), self.clock)
            except Exception as e:  # any runtime's load or run error: this file is skipped, not the run
                failed[name] = f"{type(e).__name__}: {e}"
                self.warn(f"{candidate.path.name} could not run ({failed[name]}); skipped")
        if not times:
            reasons = "; ".join(f"{k}: {v}" for k, v in failed.items())
            raise ValueError(f"no {model} file could run: {reasons}")
        fastest = min(times, key=times.__getitem__)
        return Choice(model, fastest, by_variant(candidates)[fastest].path, times, failed)


def by_variant(candidates: list[Candidate]) -> dict[str, Candidate]:
    return {c.variant.name: c for c in candidates}
