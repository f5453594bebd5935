#!/usr/bin/env python3
"""Compare two `edgemask-run --json` outputs of the same images (say x86-64 and arm64 under emulation).

Two machines running the same int8 models may round differently inside their kernels, so the runs are
compared within tolerances: the same images, the same faces with the same labels, boxes within
``--box-tol`` pixels and scores within ``--score-tol``. Prints one (check, result) row per check and exits
1 if any check fails. Standard library only, so it runs with any Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePath

from edgemask.argtypes import fraction, in_range

IMAGE_KEYS = ("image", "path", "file", "source")


def load_run(path: Path) -> dict[str, dict]:
    """Records of one run keyed by image file name (the two runs see the images under different folders).

    Accepts a JSON array of records or one JSON record per line; lines that are not objects with an image
    key (a summary, say) are ignored.
    """
    text = path.read_text()
    try:
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    runs = {}
    for rec in records:
        key = next((rec[k] for k in IMAGE_KEYS if isinstance(rec, dict) and k in rec), None)
        if key is not None:
            runs[PurePath(str(key)).name] = rec
    if not runs:
        raise ValueError(f"{path}: no per-image records (objects with one of the keys {IMAGE_KEYS})")
    return runs


def box_gap(a: dict, b: dict) -> float:
    """Largest coordinate difference between two faces' boxes, in pixels."""
    return max(abs(float(x) - float(y)) for x, y in zip(a["box"], b["box"], strict=True))


def pair_faces(ref: list[dict], other: list[dict]) -> list[tuple[dict, dict]]:
    """Pair each reference face with the nearest unpaired face of the other run (by box gap), so that two
    faces whose scores swap order between machines are still compared with each other."""
    free = list(other)
    pairs = []
    for face in ref:
        if not free:
            break
        best = min(free, key=lambda f: box_gap(face, f))
        free.remove(best)
        pairs.append((face, best))
    return pairs


def compare(ref: dict[str, dict], other: dict[str, dict], box_tol: float, score_tol: float) -> list[tuple]:
    """Rows ``(check, passed, detail)``; ``detail`` names the worst case."""
    common = sorted(ref.keys() & other.keys())
    missing = sorted(ref.keys() ^ other.keys())
    unmatched = f", unmatched {missing}" if missing else ""
    rows = [("same images", not missing, f"{len(common)} images{unmatched}")]

    count_diff, label_diff = [], []
    worst_box, worst_score = (0.0, ""), (0.0, "")
    n_faces = 0
    for name in common:
        a, b = ref[name].get("faces", []), other[name].get("faces", [])
        if len(a) != len(b):
            count_diff.append(f"{name}: {len(a)} vs {len(b)}")
        for fa, fb in pair_faces(a, b):
            n_faces += 1
            if fa["label"] != fb["label"]:
                label_diff.append(f"{name} {fa['box']}: {fa['label']} vs {fb['label']}")
            gap = box_gap(fa, fb)
            if gap > worst_box[0]:
                worst_box = (gap, f"{name} {fa['box']} vs {fb['box']}")
            for key in ("score", "face_score"):
                if key in fa and key in fb:
                    d = abs(float(fa[key]) - float(fb[key]))
                    if d > worst_score[0]:
                        worst_score = (d, f"{name} {key} {fa[key]} vs {fb[key]}")

    total = sum(len(ref[n].get("faces", [])) for n in common)
    rows.append(("same number of faces", not count_diff, f"{total} faces" + _listed(count_diff)))
    rows.append(("same labels", not label_diff, f"{n_faces} faces compared" + _listed(label_diff)))
    rows.append((f"boxes within {box_tol:g} px", worst_box[0] <= box_tol, _worst(worst_box, "px", "{:.0f}")))
    rows.append(
        (f"scores within {score_tol:g}", worst_score[0] <= score_tol, _worst(worst_score, "", "{:.4f}"))
    )
    return rows


def _listed(items: list[str]) -> str:
    return f"; differ: {'; '.join(items[:5])}" + (" ..." if len(items) > 5 else "") if items else ""


def _worst(worst: tuple[float, str], unit: str, fmt: str) -> str:
    value = fmt.format(worst[0]) + (f" {unit}" if unit else "")
    return f"max {value}" + (f" ({worst[1]})" if worst[1] else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="JSON output of the reference run (x86-64)")
    parser.add_argument("other", type=Path, help="JSON output of the run to check (arm64)")
    parser.add_argument(
        "--box-tol", type=in_range(0.0, 10_000.0), default=1.0, help="largest box difference, px (default 1)"
    )
    parser.add_argument("--score-tol", type=fraction, default=0.02, help="largest score difference (0.02)")
    parser.add_argument("--tsv", action="store_true", help="print tab-separated (check, result) rows only")
    args = parser.parse_args(argv)
    try:
        rows = compare(load_run(args.reference), load_run(args.other), args.box_tol, args.score_tol)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"compare_runs: cannot compare: {e}", file=sys.stderr)
        return 2
    for check, passed, detail in rows:
        result = f"{'PASS' if passed else 'FAIL'} ({detail})"
        print(f"{check}\t{result}" if args.tsv else f"| {check:<22} | {result}")
    return 0 if all(passed for _, passed, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
