"""The original recipe's batch job: crop every face found in a folder of raw images and file it under
``with_mask/`` or ``without_mask/``, so people can review the crops or train on them.

``manifest.csv`` in the output folder is the record and the resume point: one row per face (source,
box, label, scores, crop file), or one row with an empty ``face`` for a source without faces. A source
that appears in it is done and is skipped by the next run. The crops of a source are written first and
its rows appended (and flushed to disk) after, so an interrupted run repeats at most the source it was
on, and then :func:`~edgemask.app.outfiles.write_new` keeps both copies rather than overwriting.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemask.app.outfiles import inside, safe_name, write_image_new
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.core.pipeline import Face
from edgemask.labels import full_name

MANIFEST = "manifest.csv"
FIELDS = ("source", "face", "x1", "y1", "x2", "y2", "label", "score", "face_score", "crop")


class FaceSorter:
    """Writes face crops and manifest rows under ``out_dir``. A crop is exactly what the classifier saw
    (``Face.crop``); faces without one are cropped by the same rule with ``margin``."""

    def __init__(self, out_dir: Path, margin: float = 0.1) -> None:
        self.out_dir = out_dir
        self.margin = margin
        out_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = out_dir / MANIFEST
        self.done = read_done(self.manifest)
        self.crops_written = 0

    def is_done(self, source: str) -> bool:
        return source in self.done

    def crop_path(self, source: str, label: str, k: int) -> Path:
        folder = self.out_dir / full_name(label)
        folder.mkdir(exist_ok=True)
        return inside(folder, f"{safe_name(str(Path(source).with_suffix('')))}_face{k}.jpg")

    def add(self, source: str, image: np.ndarray, faces: Sequence[Face]) -> list[Path]:
        """Save the crops of one source, then record it as done. Returns the crop files written."""
        h, w = image.shape[:2]
        rows, written = [], []
        for k, face in enumerate(faces):
            box = face.crop if face.crop is not None else face_crop_boxes(face.box, self.margin, w, h)[0]
            path = write_image_new(self.crop_path(source, face.label, k), crop(image, box))
            written.append(path)
            rel = path.relative_to(self.out_dir).as_posix()
            rows.append(
                [source, k, *face.box, face.label, f"{face.score:.4f}", f"{face.face_score:.4f}", rel]
            )
        if not rows:
            rows.append([source, "", "", "", "", "", "", "", "", ""])
        self._append(rows)
        self.done.add(source)
        self.crops_written += len(written)
        return written

    def _append(self, rows: list[list]) -> None:
        size = self.manifest.stat().st_size if self.manifest.exists() else 0
        torn = size > 0 and not ends_with_newline(self.manifest)
        with open(self.manifest, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if size == 0:
                writer.writerow(FIELDS)
            elif torn:
                f.write("\r\n")
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())


def ends_with_newline(path: Path) -> bool:
    """Whether the file's last byte ends a line: a crash can leave a torn row that must not swallow the
    next one."""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_done(manifest: Path) -> set[str]:
    """Sources recorded in an existing manifest (a torn last line from a crash is ignored)."""
    if not manifest.exists():
        return set()
    with open(manifest, newline="", encoding="utf-8") as f:
        return {row["source"] for row in csv.DictReader(f) if row.get("crop") is not None}
