"""Digests of every pixel array the runtime computes before a network runs, per image and stage: the
decoded image, each detector family's network inputs at its operating point, and the classifier input
of a fixed centre crop; plus a probe of OpenCV's resize modes on their own. Run on two machines (or
OpenCV builds) and compare with ``--compare``: the first stage whose digest differs is where the two
paths diverge (it exits 1 when a pipeline stage differs; the probe only informs).

    python scripts/preprocessing_digests.py IMAGE... > x86_64.json
    python scripts/preprocessing_digests.py --compare x86_64.json aarch64.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


INTERPOLATIONS = ("INTER_LINEAR", "INTER_LINEAR_EXACT", "INTER_AREA", "INTER_NEAREST_EXACT")
"""OpenCV resize modes probed on their own, to tell which ones two builds compute alike."""


def resize_probe(image: np.ndarray) -> dict[str, str]:
    """Each interpolation on an enlargement (x1.6), a shrink (x0.56) and a squash to 224×224."""
    import cv2

    h, w = image.shape[:2]
    targets = {"enlarge": (round(w * 1.6), round(h * 1.6)), "shrink": (round(w * 0.56), round(h * 0.56))}
    targets["squash"] = (224, 224)
    out = {}
    for name in INTERPOLATIONS:
        for what, size in targets.items():
            out[f"probe {name} {what}"] = digest(cv2.resize(image, size, interpolation=getattr(cv2, name)))
    return out


def stages(path: Path) -> dict[str, str]:
    """Stage name -> digest of its output array, in pipeline order, then the resize probe."""
    from edgemask.core.detectors import default_passes
    from edgemask.core.imageio import read_image
    from edgemask.core.ops.image import classifier_input

    image = read_image(path)
    out = {"decode": digest(image)}
    for family in ("yunet", "res10"):
        for k, p in enumerate(default_passes(family, image)):
            out[f"{family} pass {k} {p.size[1]}x{p.size[0]}"] = digest(p.blob)
    h, w = image.shape[:2]
    face = image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    for size in (64, 96, 128):
        out[f"classifier input {size}"] = digest(classifier_input(face, size))
    return {**out, **resize_probe(image)}


def compare(a: dict, b: dict) -> list[str]:
    """One line per stage: of the images that have it, how many agree, and the first that differs."""
    lines = []
    names = [n for n in a if n in b]
    for stage in dict.fromkeys(s for n in names for s in a[n]):
        having = [n for n in names if stage in a[n] and stage in b[n]]
        differ = [n for n in having if a[n][stage] != b[n][stage]]
        verdict = "identical" if not differ else f"DIFFERS on {len(differ)} (first: {differ[0]})"
        lines.append(f"{stage}: {len(having) - len(differ)}/{len(having)} images {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, help="images, or two digest files with --compare")
    p.add_argument("--compare", action="store_true", help="compare two JSON files written by this script")
    args = p.parse_args(argv)
    if args.compare:
        a, b = (json.loads(path.read_text())["images"] for path in args.paths[:2])
        lines = compare(a, b)
        print("\n".join(lines))
        pipeline = [line for line in lines if not line.startswith("probe ")]
        return 0 if all(line.endswith("identical") for line in pipeline) else 1
    import cv2

    images = {path.name: stages(path) for path in args.paths}
    print(json.dumps({"opencv": cv2.__version__, "images": images}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
