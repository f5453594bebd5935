"""Where a classifier goes wrong on real scenes: FAR/FRR by face width on the ground-truth crops of a
VOC folder (margin 0, as ``edgemask-eval`` cuts them) and, with ``--detector``, on the detector's own
crops matched to the annotations (the pipeline's margin, as deployment cuts them), optionally also
rotated so the eyes are level (``--align``, YuNet landmarks). Writes a contact sheet of the errors
(``--sheet``) to look at what hides the faces.

    python benchmarks/classifier_errors.py models/mask_classifier_int8.tflite \\
        --voc ../shared/assets/datasets/scenes_dev --detector models/face_detector_yunet_int8.tflite \\
        --align --sheet runs/errors.png --run-dir runs/errors
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.core.pipeline import DEFAULT_MARGIN
from edgemask.evaluation.voc import load_scenes
from edgemask.labels import LABELS
from edgemask.training.classifier.scenes import DetectionCache, detections_cache, matched_truth
from edgemask.training.evaluate import load_classifier

WIDTH_BINS = ((0, 10), (10, 14), (14, 20), (20, 32), (32, 10_000))
MASKED, BARE = LABELS.index("with_mask"), LABELS.index("without_mask")


def eye_angle(landmarks: np.ndarray) -> float:
    """Radians from the person's right eye (first landmark) to their left eye (second): 0 when level."""
    (rx, ry), (lx, ly) = landmarks.reshape(-1, 2)[:2]
    return math.atan2(ly - ry, lx - rx)


def aligned_crop(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray, margin: float) -> np.ndarray:
    """The crop of ``box`` grown by ``margin``, cut from the image rotated about the box centre so the
    eyes are level (borders replicated); with level eyes it is the plain crop."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = (x2 - x1) * (1 + 2 * margin), (y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a = eye_angle(landmarks)
    c, s = math.cos(a), math.sin(a)
    # destination (u, v) -> source: rotate (u - w/2, v - h/2) by the eye angle about the centre
    to_source = np.array([[c, -s, cx - c * w / 2 + s * h / 2], [s, c, cy - s * w / 2 - c * h / 2]])
    size = (max(1, round(w)), max(1, round(h)))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, to_source, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def rates(truth: np.ndarray, predicted: np.ndarray) -> dict:
    bare, masked = truth == BARE, truth == MASKED
    far = int((predicted[bare] == MASKED).sum())
    frr = int((predicted[masked] == BARE).sum())
    return {
        "n": len(truth),
        "accuracy": float((truth == predicted).mean()) if len(truth) else float("nan"),
        "far": far / max(1, int(bare.sum())),
        "frr": frr / max(1, int(masked.sum())),
        "far_errors": far,
        "frr_errors": frr,
    }


def by_width(truth: np.ndarray, predicted: np.ndarray, widths: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in WIDTH_BINS:
        sel = (widths >= lo) & (widths < hi)
        rows.append(
            {"width": f"{lo}-{hi}" if hi < 10_000 else f">={lo}", **rates(truth[sel], predicted[sel])}
        )
    return rows


def contact_sheet(crops: list[np.ndarray], captions: list[str], path: Path, side: int = 96) -> None:
    cols = 10
    rows = max(1, math.ceil(len(crops) / cols))
    sheet = np.full((rows * (side + 14), cols * side, 3), 255, np.uint8)
    for i, (face, text) in enumerate(zip(crops, captions, strict=True)):
        r, c = divmod(i, cols)
        y, x = r * (side + 14), c * side
        sheet[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_NEAREST)
        cv2.putText(sheet, text, (x + 2, y + side + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
    cv2.imwrite(str(path), sheet)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--voc", type=Path, required=True)
    p.add_argument("--detector", type=Path, help="also score the detector's matched crops")
    p.add_argument("--align", action="store_true", help="also score eye-levelled detector crops")
    p.add_argument("--run-dir", type=Path, default=Path("runs/errors"), help="detector box cache")
    p.add_argument("--sheet", type=Path, help="PNG contact sheet of the ground-truth crop errors")
    args = p.parse_args(argv)
    clf = load_classifier(args.model)
    cache = (
        DetectionCache(detections_cache(args.run_dir, args.voc, args.detector), args.detector)
        if args.detector
        else None
    )
    sets: dict[str, dict[str, list]] = {
        k: {"crop": [], "truth": [], "width": []} for k in ("truth", "detector", "aligned")
    }
    scenes = load_scenes(args.voc)
    for scene in scenes:
        h, w = scene.image.shape[:2]
        keep = np.flatnonzero(scene.labels >= 0)
        for i, box in zip(keep, face_crop_boxes(scene.boxes[keep], 0.0, w, h), strict=True):
            sets["truth"]["crop"].append(crop(scene.image, box))
            sets["truth"]["truth"].append(int(scene.labels[i]))
            sets["truth"]["width"].append(float(scene.boxes[i, 2] - scene.boxes[i, 0]))
        if cache is None:
            continue
        found = cache.get(scene)
        matched = matched_truth(found, scene)
        hits = [d for d in np.flatnonzero(matched >= 0) if scene.labels[matched[d]] >= 0]
        for d, box in zip(hits, face_crop_boxes(found.boxes[hits], DEFAULT_MARGIN, w, h), strict=True):
            label, width = int(scene.labels[matched[d]]), float(found.boxes[d, 2] - found.boxes[d, 0])
            variants = [("detector", crop(scene.image, box))]
            if args.align:
                variants.append(
                    ("aligned", aligned_crop(scene.image, found.boxes[d], found.landmarks[d], DEFAULT_MARGIN))
                )
            for name, face in variants:
                sets[name]["crop"].append(face)
                sets[name]["truth"].append(label)
                sets[name]["width"].append(width)
    if cache is not None:
        cache.save()
    report = {"model": str(args.model), "input_size": clf.input_size, "scene_skips": dict(scenes.skipped)}
    for name, s in sets.items():
        if not s["crop"]:
            continue
        probs = np.concatenate([clf.infer(s["crop"][i : i + 64]) for i in range(0, len(s["crop"]), 64)])
        predicted, truth, widths = probs.argmax(axis=1), np.asarray(s["truth"]), np.asarray(s["width"])
        report[name] = {"all": rates(truth, predicted), "by_width": by_width(truth, predicted, widths)}
        if name == "truth" and args.sheet:
            wrong = np.flatnonzero(predicted != truth)
            captions = [
                f"{'FAR' if truth[i] == BARE else 'FRR'} {widths[i]:.0f}px {probs[i, predicted[i]]:.2f}"
                for i in wrong
            ]
            contact_sheet([s["crop"][i] for i in wrong], captions, args.sheet)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
