"""Where sorted crops go: the output folder of the original recipe's batch job, which files every face
found in a folder of raw images under ``with_mask/`` or ``without_mask/``, so people can review the crops
or train on them.

``manifest.csv`` in the output folder is the record and the resume point: one row per face (source,
the SHA-256 of its bytes, box, label, scores, crop file), or one row with an empty ``face`` for a source
without faces. ``source`` is the file's absolute path when it was sorted, so ``day1/x.jpg`` and
``day2/x.jpg`` sorted in two runs stay apart (edgemask < 0.4 recorded the path inside the input).
A source is identified by its content: an image is done when the manifest holds its digest, under its
own path or another one, so

- re-running on the same folder skips everything;
- a new image with an old one's name (``day2/img_001.jpg`` after ``day1/img_001.jpg``) is processed,
  its crops numbered beside the old ones (``img_001_face0-1.jpg``);
- a renamed or copied image already sorted is skipped as done (its faces are in the manifest once);
- rows of manifests written before digests were recorded (edgemask < 0.3) match by path alone, as they
  did then: such a manifest is rewritten once with an empty ``sha256`` column for its old rows.

The crops of a source are written first and its rows appended (and flushed to disk) after, so an
interrupted run repeats at most the source it was on, and then
:func:`~edgemask.app.outfiles.write_new` keeps both copies rather than overwriting.

One run at a time per output folder: a run holds an exclusive ``flock`` on ``.edgemask-sort.lock`` in
the folder (left in place: deleting a lock file races with the next run) and a second run stops at once
with :class:`SortBusy`. No ``--wait``: the second run would mostly find the first one's work done, and
``flock(1)`` queues runs from a shell if need be.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from edgemask.app.outfiles import inside, write_image_new
from edgemask.app.sorting.crops import SortedImage
from edgemask.labels import full_name

try:
    import fcntl
except ImportError:  # Windows: no flock; runs into one folder are then not kept apart
    fcntl = None

MANIFEST = "manifest.csv"
LOCK_FILE = ".edgemask-sort.lock"
FIELDS = ("source", "sha256", "face", "x1", "y1", "x2", "y2", "label", "score", "face_score", "crop")


class SortError(RuntimeError):
    """An output folder that cannot be sorted into."""


class SortBusy(SortError):
    """Another run holds the output folder."""


class SortLock:
    """An exclusive, non-blocking ``flock`` on the folder's lock file, which records the holder's pid."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self.file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        if fcntl is None:
            return
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            raise SortBusy(
                f"{folder} is in use by another edgemask-run (pid {holder}); wait for it to finish or sort "
                "into another folder"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    def release(self) -> None:
        self.file.close()


class Manifest:
    """What an existing ``manifest.csv`` says is done: the digests of its sources, and the paths of rows
    without a digest (manifests from before digests)."""

    def __init__(self) -> None:
        self.digests: set[str] = set()
        self.legacy_paths: set[str] = set()

    def add(self, source: str, digest: str) -> None:
        if digest:
            self.digests.add(digest)
        else:
            self.legacy_paths.add(source)

    def is_done(self, source: str, digest: str | None) -> bool:
        return digest in self.digests or source in self.legacy_paths


class SortFolder:
    """The output folder of a sort: its lock, held until :meth:`close`, and ``manifest.csv``, the record and
    resume point. The one writer of crops and rows, whichever engine cut them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.manifest = out_dir / MANIFEST
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.lock = SortLock(out_dir)
        except OSError as e:
            raise SortError(f"{out_dir}: cannot sort into this folder ({e})") from e
        try:
            upgrade_manifest(self.manifest)
            self.done = read_manifest(self.manifest)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            self.lock.release()
            raise SortError(f"{self.manifest}: cannot read or update it ({e})") from e
        self.crops_written = 0

    def is_done(self, digest: str, key: str = "") -> bool:
        """Whether the image with these bytes (``key``: its path inside the input, for manifests from
        before digests) is sorted already."""
        return self.done.is_done(key, digest)

    def record(self, image: SortedImage) -> list[Path]:
        """Save the crops of one image, then its rows. Returns the crop files written."""
        rows, written = [], []
        for face in image.faces:
            folder = self.out_dir / full_name(face.label)
            folder.mkdir(exist_ok=True)
            path = write_image_new(inside(folder, face.name), face.pixels)
            written.append(path)
            rel = path.relative_to(self.out_dir).as_posix()
            rows.append(
                [
                    image.source,
                    image.digest,
                    face.index,
                    *face.box,
                    face.label,
                    f"{face.score:.4f}",
                    f"{face.face_score:.4f}",
                    rel,
                ]
            )
        if not rows:
            rows.append([image.source, image.digest, "", "", "", "", "", "", "", "", ""])
        self._append(rows)
        self.done.add(image.key, image.digest)
        self.crops_written += len(written)
        return written

    def close(self) -> None:
        self.lock.release()

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


def complete_rows(manifest: Path) -> tuple[list[str], list[dict]]:
    """The header and the rows of a manifest, less a torn last row from a crash."""
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if row.get("crop") is not None]
        return list(reader.fieldnames or []), rows


def read_manifest(manifest: Path) -> Manifest:
    """What an existing manifest records as done (a torn last line from a crash is ignored)."""
    done = Manifest()
    if manifest.exists():
        for row in complete_rows(manifest)[1]:
            done.add(row["source"], row.get("sha256") or "")
    return done


def upgrade_manifest(manifest: Path) -> None:
    """Rewrite a manifest from before digests with the ``sha256`` column (empty for its rows), atomically
    (a crash leaves the old file or the new one, never half of one)."""
    if not manifest.exists() or manifest.stat().st_size == 0:
        return
    fields, rows = complete_rows(manifest)
    if "sha256" in fields:
        return
    partial = manifest.with_name(manifest.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, manifest)
