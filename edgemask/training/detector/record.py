"""What a fine-tuned detector file says about how it was made: the recipe, the run's settings and
outcome, and its training data named by digest. ``edgemask-export`` puts it in the exported files'
metadata; the model card quotes it. No TensorFlow."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from edgemask.assets import file_digest
from edgemask.core.machine_id import cpu_model
from edgemask.evaluation.machine import usable_cores

RECIPE = (
    "YuNet-n fine-tuned from yunet_n_dynamic.onnx (edgemask-train detector): every scene box is a face; "
    "SimOTA assignment (centre radius 2.5 strides, dynamic k from the 10 best IoUs) priced by the frozen "
    "source model; sigmoid BCE on obj (all cells) and cls (positives, target: IoU), EIoU boxes x5, "
    "SmoothL1 landmarks x0.1 distilled from the source model; confident source-model faces under half "
    "the scene's smallest labelled face and off every labelled face left out of the background loss; "
    "AdamW with warm-up and cosine decay; random square crops 0.5-1.5 of the short side, scale jitter, "
    "flip, colour, blur, JPEG; early stopping on the held-out AP@0.5"
)


def folder_digest(folder: str | os.PathLike) -> str:
    """SHA-256 over the sorted ``<sha256>  ./<name>/<path>`` lines of every file in ``folder`` (the lines
    the assets' ``SHA256SUMS.datasets`` lists, so the digest can be checked against it)."""
    folder = Path(folder)
    lines = sorted(
        f"{file_digest(p)}  ./{folder.name}/{p.relative_to(folder).as_posix()}"
        for p in folder.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def training_record(run_dir: str | os.PathLike, summary: dict) -> dict:
    """The record of a finished run in ``run_dir`` (its ``config.json`` and ``history.csv``)."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    data = config.pop("data")
    for machine_specific in ("out", "resume", "source"):
        config.pop(machine_specific, None)
    history = read_history(run_dir / "history.csv")
    best = max(history, key=lambda row: row["val_ap"])
    return {
        "recipe": RECIPE,
        "config": config,
        "training_data": {
            "name": Path(data).name,
            "sha256_of_file_list": folder_digest(data),
            "train_scenes": summary["train_scenes"],
            "held_out_scenes": summary["held_out_scenes"],
            "held_out": f"sha256 of the file name below {config['val_fraction']} of the range",
        },
        "epochs_run": len(history),
        "best_epoch": int(best["epoch"]),
        "held_out": {k: round(best[k], 4) for k in ("val_ap", "val_recall", "val_precision")},
        "train_minutes": round(history[-1]["seconds"] / 60, 1),
        "machine": f"{cpu_model()}, {usable_cores()} cores",
    }
